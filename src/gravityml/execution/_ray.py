"""Run a job on a site's Ray cluster: the same `run_job`, inside a Ray task (layer 4).

The task runs where Ray schedules it, with the spec, the site it was planned for and the workspace
it reports to. The cluster must reach that workspace: a shared ``MLFLOW_TRACKING_URI`` (an MLflow
server) for a remote cluster, or the same folder for a cluster on this machine. The plan is checked
here, before anything is submitted, and again by the task, which enforces the same rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gravityml.errors import PlacementError

#: Environment the task needs to reach the same workspace and catalog as the caller.
_FORWARDED = ("GRAVITYML_HOME", "MLFLOW_TRACKING_URI", "GRAVITYML_CATALOG")


def _task(document: Mapping[str, Any], base_dir: str, workspace_root: str, options: Mapping[str, Any]) -> Any:
    from gravityml.execution._local import run_job
    from gravityml.spec import parse_spec
    from gravityml.tracking import Workspace

    import ray

    spec = parse_spec(document, base_dir=Path(base_dir))
    where = {"ray_node": ray.get_runtime_context().get_node_id(), "ray_worker_pid": str(os.getpid())}
    options = {**options, "extra_tags": {**(options.get("extra_tags") or {}), **where}}
    return run_job(spec, workspace=Workspace.current(workspace_root), on_executor=True, **options)


def run_on_ray(
    address: str,
    document: Mapping[str, Any],
    base_dir: Path,
    workspace_root: Path,
    options: Mapping[str, Any],
) -> Any:
    """Submit the job to the Ray cluster at ``address`` and wait for its :class:`JobResult`."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency, but a slim install may lack it
        raise PlacementError(
            "this site runs jobs on Ray, which is not installed", got=address, fix="pip install 'ray[default]'"
        ) from None
    env = {k: os.environ[k] for k in _FORWARDED if k in os.environ}
    env["GRAVITYML_HOME"] = str(workspace_root)
    connected_here = not ray.is_initialized()
    try:
        if connected_here:
            ray.init(address=address, runtime_env={"env_vars": env}, logging_level="ERROR",
                     log_to_driver=False, include_dashboard=False)
    except Exception as exc:  # connection refused, version mismatch, bad address: all the user's to fix
        raise PlacementError(
            f"cannot reach the Ray cluster at {address!r}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            got=address,
            fix="start the cluster (ray start --head) or correct the site's executor in the catalog",
        ) from None
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_task)
        return ray.get(task.remote(dict(document), str(base_dir), str(workspace_root), dict(options)))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if hasattr(exc, "cause") else None
        if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
            raise cause from None
        raise
    finally:
        if connected_here:
            ray.shutdown()
