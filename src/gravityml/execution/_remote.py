"""The entrypoint of a gravityml job on a site's Ray cluster: ``python -m gravityml.execution._remote``.

It reads the placed job from its runtime environment, records where it really runs (the Ray node,
the host, the cluster's address, the Ray job id), and runs the job with :func:`run_placed`: it
never plans again. On success it prints one ``GRAVITYML_RESULT`` line that the submitter reads;
a user error prints one ``GRAVITYML_ERROR`` line and exits 2. SIGTERM (``jobs stop``) ends the
run KILLED before anything is registered.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sys
from types import FrameType

from gravityml.errors import GravityMLError
from gravityml.execution._job import JOB_ENV, RESULT_MARK, PlacedJob, gravityml_version
from gravityml.execution._jobs import ERROR_MARK
from gravityml.execution._local import run_placed
from gravityml.tracking import Workspace


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # start_run ends the run KILLED


def _node_id() -> str:
    """The id of the Ray node this driver runs on, as the cluster reports it."""
    import logging

    import ray

    ray.init(address="auto", logging_level=logging.ERROR, log_to_driver=False)
    try:
        return str(ray.get_runtime_context().get_node_id())
    finally:
        ray.shutdown()


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    job = PlacedJob.from_json(os.environ[JOB_ENV])
    host = socket.gethostname()
    expected = os.environ.get("GRAVITYML_VERSION", gravityml_version())
    print(f"gravityml {gravityml_version()} (submitted by {expected}), python {sys.version.split()[0]} "
          f"at {sys.executable}, host {host}, pid {os.getpid()}: {job.name} placed on {job.site}", flush=True)
    if os.environ.get("GRAVITYML_HOME", "").startswith("~"):
        os.environ["GRAVITYML_HOME"] = os.path.expanduser(os.environ["GRAVITYML_HOME"])
    where = {
        "site": os.environ["GRAVITYML_SITE"],
        "jurisdiction": job.jurisdiction,
        "executor": "ray",
        "cluster": os.environ.get("GRAVITYML_CLUSTER", ""),
        "ray_node_id": _node_id(),
        "ray_job_id": os.environ.get("GRAVITYML_RAY_JOB_ID", ""),
        "host": host,
    }
    print(f"ray node {where['ray_node_id']}", flush=True)
    try:
        result = run_placed(job, workspace=Workspace.current(), where=where,
                            resume=os.environ.get("GRAVITYML_RESUME") == "1", run_id=os.environ["GRAVITYML_RUN_ID"])
    except GravityMLError as exc:
        print(ERROR_MARK + exc.message, flush=True)
        return 2
    data = dataclasses.asdict(result)
    data["workspace"] = str(data["workspace"])
    print(RESULT_MARK + json.dumps(data), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
