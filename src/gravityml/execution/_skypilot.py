"""Clouds without a standing cluster: launch one per job with SkyPilot, run the placed job, tear it down.

The task carries the placed job in its environment (the same JSON a Ray job gets) and runs
``python -m gravityml.execution._remote`` on the launched cluster after ``ray start --head`` (the
remote side records the Ray node it ran on, as on a standing cluster). Its resources are the plan's
offer: the site's cloud and region, the offer's instance type and accelerators, spot when the plan
chose a spot price. On-demand offers use ``sky.launch(..., down=True)``; spot offers use SkyPilot's
managed jobs (``sky.jobs.launch``), whose preemption recovery restarts the task, which then resumes
from its checkpoint.

SkyPilot is an optional extra (``pip install 'gravityml[skypilot]'``): it pins versions of click and
uvicorn older than the ones the rest of gravityml is tested with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gravityml._typing import MetricSink
from gravityml.data import Site
from gravityml.errors import ExecutorError
from gravityml.execution._job import JOB_ENV, PlacedJob, gravityml_version
from gravityml.execution._local import JobResult
from gravityml.placement import hardware
from gravityml.tracking import Workspace

#: SkyPilot's names for the accelerators of the hardware table.
_SKY_ACCELERATORS = {"a100": "A100", "a10g": "A10G", "h100": "H100", "l4": "L4", "t4": "T4", "v100": "V100"}


def _sky() -> Any:
    try:
        import sky
    except ImportError:
        raise ExecutorError(
            "this site launches its cluster with SkyPilot, which is not installed",
            got="launcher: skypilot", fix="pip install 'gravityml[skypilot]' and configure a cloud (`sky check`)",
        ) from None
    return sky


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
    return {
        "name": f"gravityml-{job.name}",
        "resources": {k: v for k, v in resources.items() if v is not None},
        "num_nodes": job.nodes,
        "envs": envs,
        "setup": f"pip install 'gravityml=={gravityml_version()}' 'ray[default]'",
        "run": "ray start --head --disable-usage-stats >/dev/null && python -m gravityml.execution._remote",
    }


class SkyPilotLauncher:
    """Launches a cluster for each job on a cloud site, runs it there and tears the cluster down."""

    kind = "skypilot"

    def __init__(self, site_name: str, site: Site, *, on_log: Callable[[str], None] | None = None) -> None:
        self.site_name = site_name
        self.site = site
        self.on_log = on_log

    def task(self, job: PlacedJob, run_id: str = "") -> Any:
        return _sky().Task.from_yaml_config(task_config(job, self.site_name, self.site, run_id))

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

        sky = _sky()
        cluster = f"gravityml-{job.name}"
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
                                 "nothing", got=run_id, fix=f"see the run's logs: sky logs {cluster}")
        run = workspace.client.get_run(run_id)
        version = found[0]
        return JobResult(name=job.name, version=int(version.version), run_id=run_id,
                         experiment=job.mlflow_experiment, metrics=dict(run.data.metrics),
                         artifact_uri=str(run.info.artifact_uri), workspace=workspace.root,
                         tracking_uri=workspace.tracking_uri, lineage=dict(version.tags))
