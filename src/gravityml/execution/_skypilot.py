"""Clouds without a standing cluster: launch one per job with SkyPilot, run the placed job, tear it down.

The task carries the placed job in its environment (the same JSON a Ray job gets) and runs
``python -m gravityml.execution._remote`` on the launched cluster after ``ray start --head`` (the
remote side records the Ray node it ran on, as on a standing cluster). Its resources are the plan's
offer: the site's cloud and region, the offer's instance type and accelerators, spot when the plan
chose a spot price. On-demand offers use ``sky.launch(..., down=True)``; spot offers use SkyPilot's
managed jobs (``sky.jobs.launch``), whose preemption recovery restarts the task, which then resumes
from its checkpoint.

The user's own code named by entry points travels as the task's file mounts (under
``~/gravityml-code``, put on ``PYTHONPATH`` by the run command), as it travels in a Ray job's
``py_modules``. Before anything is launched or recorded, :func:`dry_run` hands the task to
SkyPilot's own dry run (``sky.execution.launch(task, dryrun=True)``, what SkyPilot's API server
runs for ``sky launch --dryrun``): its optimizer checks the cloud, region, instance type and
accelerators against its catalog, and a task it refuses is a one-line :class:`ExecutorError`.

SkyPilot is an optional extra (``pip install 'gravityml[skypilot]'``): it pins versions of click and
uvicorn older than the ones the rest of gravityml is tested with, so it usually lives in a venv of
its own; :func:`dry_run` can run SkyPilot's side in another interpreter (``python=``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from gravityml._typing import MetricSink
from gravityml.data import Site
from gravityml.errors import ExecutorError
from gravityml.execution._job import JOB_ENV, PlacedJob, gravityml_version
from gravityml.execution._local import JobResult
from gravityml.execution._ray import _user_code
from gravityml.placement import hardware
from gravityml.tracking import Workspace

#: SkyPilot's names for the accelerators of the hardware table.
_SKY_ACCELERATORS = {"a100": "A100", "a10g": "A10G", "h100": "H100", "l4": "L4", "t4": "T4", "v100": "V100"}


#: Where the user's own code (the modules the spec names by entry point) is mounted on the cluster.
REMOTE_CODE = "~/gravityml-code"

_INSTALL_FIX = (
    "pip install 'gravityml[skypilot]' and configure the cloud (`sky check`); SkyPilot 0.14 pins click<8.2 "
    "and an older uvicorn, so give it a venv of its own (python -m venv .venv-sky && .venv-sky/bin/pip install "
    "'gravityml[skypilot]') and run gravityml from there"
)


def _missing(site_name: str, python: str) -> ExecutorError:
    return ExecutorError(
        f"site {site_name!r} says launcher: skypilot, and SkyPilot cannot be imported",
        allowed="a Python where `import sky` works (SkyPilot installed)",
        got=f"{python}: no module named 'sky'", fix=_INSTALL_FIX,
    )


def _sky(site_name: str = "") -> Any:
    try:
        import sky
    except ImportError:
        raise _missing(site_name, sys.executable) from None
    return sky


def _refused(site_name: str, config: Mapping[str, Any], reason: str) -> ExecutorError:
    """SkyPilot's refusal of a task as one line: what it said, the resources it was given, how to fix them."""
    said = " ".join(reason.split())
    return ExecutorError(
        f"site {site_name!r}: SkyPilot refuses the task, nothing was launched: {said}",
        allowed="a cloud, region and instance type (with its accelerators) in SkyPilot's catalog "
        "(`sky show-gpus --infra CLOUD --all-regions`)",
        got=dict(config.get("resources", {})),
        fix=f"correct sites.{site_name}.provider / region or the offer's name (the instance type) in the catalog",
    )


_MARK = "gravityml-skypilot-dry-run: "

#: Run by the interpreter that has SkyPilot (maybe another venv's): build the task from its YAML, then
#: SkyPilot's own dry run (optimizer, catalog checks, cluster config; nothing provisioned). One line of
#: JSON after the marker says what SkyPilot made of the task, or why it refused.
_DRY_RUN = r"""
import json, sys
MARK = sys.argv[3]
try:
    import sky
    from sky import execution
except ImportError as exc:
    print(MARK + json.dumps({"missing": str(exc)}), flush=True)
    sys.exit(3)
try:
    task = sky.Task.from_yaml(sys.argv[1])
    execution.launch(task, cluster_name=sys.argv[2], dryrun=True, down=True)
except Exception as exc:
    print(MARK + json.dumps({"refused": f"{type(exc).__name__}: {exc}"}), flush=True)
    sys.exit(3)
(res,) = task.resources
print(MARK + json.dumps({
    "cloud": str(res.cloud), "region": res.region, "instance_type": res.instance_type,
    "accelerators": res.accelerators, "use_spot": res.use_spot, "num_nodes": task.num_nodes,
    "setup": task.setup, "run": task.run, "file_mounts": task.file_mounts, "envs": sorted(task.envs),
    "sky_version": sky.__version__,
}), flush=True)
"""


def dry_run(config: Mapping[str, Any], site_name: str, *, python: str | None = None,
            env: Mapping[str, str] | None = None, timeout_s: float = 300.0) -> dict[str, Any]:
    """SkyPilot's dry run of a task (``task_config``'s output): what SkyPilot made of it, or a one-line refusal.

    ``python`` is an interpreter with SkyPilot (default: this one, which must then import ``sky``);
    ``env`` its environment (default: this process's). Nothing is provisioned and nothing recorded.
    """
    if python is None:
        _sky(site_name)
        python = sys.executable
    with tempfile.TemporaryDirectory(prefix="gravityml-sky-") as tmp:
        path = Path(tmp) / "task.yaml"
        path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
        try:
            proc = subprocess.run([python, "-c", _DRY_RUN, str(path), str(config.get("name", "gravityml")), _MARK],
                                  capture_output=True, text=True, timeout=timeout_s,
                                  env=None if env is None else dict(env))
        except FileNotFoundError:
            raise _missing(site_name, python) from None
        except subprocess.TimeoutExpired:
            raise ExecutorError(
                f"site {site_name!r}: SkyPilot's dry run gave no answer in {timeout_s:.0f} s, nothing was launched",
                allowed=f"an answer within {timeout_s:.0f} s", got=python,
                fix="see `sky check` (a cloud whose credentials hang), then retry",
            ) from None
    lines = [line.partition(_MARK)[2] for line in proc.stdout.splitlines() if _MARK in line]  # after rich's codes
    if not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise _refused(site_name, config, tail[0])
    answer: dict[str, Any] = json.loads(lines[-1])
    if "missing" in answer:
        raise _missing(site_name, python)
    if "refused" in answer:
        raise _refused(site_name, config, answer["refused"])
    return answer


def task_config(job: PlacedJob, site_name: str, site: Site, run_id: str = "") -> dict[str, Any]:
    """The SkyPilot task (its YAML form) that runs ``job`` on the plan's offer at ``site``."""
    offer = site.offer(job.offer)
    hw = hardware(offer.accelerator)
    resources: dict[str, Any] = {
        "cloud": site.provider or None,
        "region": site.region or None,
        "instance_type": job.offer,
        "use_spot": job.plan.get("market") == "spot",
    }
    if hw.kind == "gpu":
        resources["accelerators"] = {_SKY_ACCELERATORS.get(offer.accelerator, offer.accelerator.upper()):
                                     offer.per_node}
    envs = {JOB_ENV: job.to_json(), "GRAVITYML_SITE": site_name, "GRAVITYML_CLUSTER": f"skypilot:{site_name}",
            "GRAVITYML_RUN_ID": run_id, "GRAVITYML_RESUME": "1", "GRAVITYML_VERSION": gravityml_version()}
    if job.tracking_uri:
        envs["MLFLOW_TRACKING_URI"] = job.tracking_uri
    code = {f"{REMOTE_CODE}/{Path(path).name}": path for path in _user_code(job)}
    run = "ray start --head --disable-usage-stats >/dev/null && python -m gravityml.execution._remote"
    if code:  # the mounted modules are importable by their top-level name, as in a Ray job's py_modules
        run = f'export PYTHONPATH="$HOME/{REMOTE_CODE[2:]}${{PYTHONPATH:+:$PYTHONPATH}}" && {run}'
    config: dict[str, Any] = {
        "name": f"gravityml-{job.name}",
        "resources": {k: v for k, v in resources.items() if v is not None},
        "num_nodes": job.nodes,
        "envs": envs,
        "setup": f"pip install 'gravityml=={gravityml_version()}' 'ray[default]'",
        "run": run,
    }
    if code:
        config["file_mounts"] = code
    return config


class SkyPilotLauncher:
    """Launches a cluster for each job on a cloud site, runs it there and tears the cluster down."""

    kind = "skypilot"

    def __init__(self, site_name: str, site: Site, *, on_log: Callable[[str], None] | None = None) -> None:
        _sky(site_name)  # refuse at once, before anything is planned to run or recorded
        self.site_name = site_name
        self.site = site
        self.on_log = on_log

    def task(self, job: PlacedJob, run_id: str = "") -> Any:
        config = task_config(job, self.site_name, self.site, run_id)
        try:
            return _sky(self.site_name).Task.from_yaml_config(config)
        except ValueError as exc:  # SkyPilot's refusal of a resource, a file mount or a name
            raise _refused(self.site_name, config, str(exc)) from None

    def run(
        self,
        job: PlacedJob,
        *,
        workspace: Workspace,
        resume: bool = False,
        sinks: Sequence[MetricSink] = (),
        extra_tags: Mapping[str, str] | None = None,
    ) -> JobResult:
        from gravityml.errors import JobFailedError
        from gravityml.execution._ray import create_run

        sky = _sky(self.site_name)
        cluster = f"gravityml-{job.name}"
        dry_run(task_config(job, self.site_name, self.site), self.site_name)  # refused here: nothing recorded
        run_id = create_run(workspace, job, {"site": self.site_name, "executor": "skypilot", "cluster": cluster},
                            extra_tags)
        task = self.task(job, run_id)
        if job.plan.get("market") == "spot":  # managed jobs recover from preemption; the job resumes
            sky.stream_and_get(sky.jobs.launch(task, name=cluster))
        else:
            sky.stream_and_get(sky.launch(task, cluster_name=cluster, down=True))
        found = workspace.client.search_model_versions(f"run_id = '{run_id}'")
        if not found:
            raise JobFailedError(f"job {job.name!r} on a SkyPilot cluster at site {self.site_name!r} registered "
                                 "nothing", allowed="a model version registered by the run", got=run_id,
                                 fix=f"see the run's logs: sky logs {cluster}")
        run = workspace.client.get_run(run_id)
        version = found[0]
        return JobResult(name=job.name, version=int(version.version), run_id=run_id,
                         experiment=job.mlflow_experiment, metrics=dict(run.data.metrics),
                         artifact_uri=str(run.info.artifact_uri), workspace=workspace.root,
                         tracking_uri=workspace.tracking_uri, lineage=dict(version.tags))
