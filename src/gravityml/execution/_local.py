"""Run a job on this machine: load data, train, track, and register the model (layer 4).

Order matters: the run's artefacts (plots, the model folder) are stored first and the model version
is registered last, inside the run, so a failure at any step leaves a FAILED run and no version.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gravityml._typing import Metrics, MetricSink, Params, PathLikeStr
from gravityml.compute import describe_hardware, resolve_device
from gravityml.data import load_dataset
from gravityml.errors import DataError
from gravityml.execution._job import SOURCE_KEY_PREFIX, PlacedJob, ensure_experiment, spec_digest
from gravityml.execution._placement import record_egress, record_metered, start_meter, stopped_for_budget
from gravityml.paradigms import TrainContext, train
from gravityml.spec import JobSpec
from gravityml.tracking import (
    LINEAGE_PREFIX,
    ModelVersion,
    TrackedRun,
    Workspace,
    finished_run,
    package_versions,
    register,
    start_run,
)


@dataclass(frozen=True)
class JobResult:
    """What a finished job produced and where it went."""

    name: str
    version: int
    run_id: str
    experiment: str
    metrics: dict[str, float]
    artifact_uri: str
    workspace: Path
    tracking_uri: str
    lineage: dict[str, str] = field(default_factory=dict)
    #: ``--resume`` of a run that had already registered its version: nothing was trained again.
    already_registered: bool = False

    @property
    def model_ref(self) -> str:
        return f"{self.name}/{self.version}"


class TeeSink:
    """Sends what a paradigm reports to several sinks (the run, a progress bar, ...)."""

    def __init__(self, sinks: Sequence[MetricSink]) -> None:
        self.sinks = list(sinks)

    def log_metrics(self, metrics: Metrics, step: int | None = None) -> None:
        for sink in self.sinks:
            sink.log_metrics(metrics, step)

    def log_params(self, params: Params) -> None:
        for sink in self.sinks:
            sink.log_params(params)

    def log_artifact(self, path: PathLikeStr, artifact_path: str | None = None) -> None:
        for sink in self.sinks:
            sink.log_artifact(path, artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for sink in self.sinks:
            sink.set_tags(tags)


__all__ = ["JobResult", "LocalExecutor", "TeeSink", "run_placed", "spec_digest", "store_trained"]


class LocalExecutor:
    """Runs placed jobs on this machine, which is at ``site`` (the catalog's ``executor: local``)."""

    kind = "local"

    def __init__(self, site: str) -> None:
        self.site = site

    def run(
        self,
        job: PlacedJob,
        *,
        workspace: Workspace,
        resume: bool = False,
        sinks: Sequence[MetricSink] = (),
        extra_tags: Mapping[str, str] | None = None,
    ) -> JobResult:
        assert job.site == self.site, f"placed on {job.site!r}, handed to the executor of {self.site!r}"
        where = {"site": self.site, "jurisdiction": job.jurisdiction, "executor": "local",
                 "host": socket.gethostname()}
        return run_placed(job, workspace=workspace, resume=resume, sinks=sinks, extra_tags=extra_tags, where=where)


def _spec_params(spec: JobSpec) -> dict[str, Any]:
    dumped = spec.model_dump(mode="json", exclude_none=True)
    return {k: dumped[k] for k in ("task", "data", "env", "model", "train", "compute", "placement") if k in dumped}


def run_placed(
    job: PlacedJob,
    *,
    workspace: Workspace,
    where: Mapping[str, str],
    resume: bool = False,
    sinks: Sequence[MetricSink] = (),
    extra_tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> JobResult:
    """Train a placed job in this process, track it and register the model; never plans again.

    ``where`` is where the work runs, as the executor knows it (site, executor, host; the Ray node
    on a cluster); the plan's own lineage is kept apart (``planned_site``). ``run_id`` re-opens a run
    the submitter created (a job on a site's cluster).
    """
    spec = job.load_spec()
    if spec.tune is not None:  # a search: trials of this job as child runs of one parent run
        from gravityml.execution._tune import run_search

        return run_search(job, spec, workspace=workspace, where=where, resume=resume, sinks=sinks,
                          extra_tags=extra_tags, run_id=run_id)
    ws = workspace.ensure()
    device = resolve_device(spec.compute.accelerator, spec.compute.devices)
    dataset = _load_data(spec, job)
    digest = spec_digest(spec)
    checkpoint_dir = ws.checkpoints_dir / f"{spec.name}-{digest[:12]}"
    run_id_file = checkpoint_dir / "run_id"
    previous_run = run_id_file.read_text().strip() if resume and run_id_file.exists() else None
    if previous_run is not None:
        finished = finished_run(ws, previous_run, spec.name)
        if finished is not None:  # killed after registering: the run is done, train nothing again
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
            return _registered_result(job.mlflow_experiment, ws, finished)
    if not resume and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)

    lineage = {
        "task": spec.task,
        "model_type": spec.model.type,
        "data_uri": dataset.uri if dataset else f"env:{spec.env.id or spec.env.entry_point}" if spec.env else "",
        "data_fingerprint": dataset.fingerprint if dataset else "",
        **job.plan,
        **dict(where),
        "accelerator": device.kind,
        "hardware": ", ".join(device.names),
        "precision": spec.compute.precision,
        "spec_sha256": digest,
        **dict(extra_tags or {}),
    }
    tags = {f"{LINEAGE_PREFIX}{k}": str(v) for k, v in lineage.items()}
    ensure_experiment(ws, job)
    with ws.scratch("job") as tmp, start_run(
        ws, job.mlflow_experiment, run_name=f"{spec.name}-{spec.model.type}", tags=tags,
        run_id=previous_run or run_id,
    ) as run:
        run_id_file.write_text(run.run_id)
        workdir = Path(tmp)
        if previous_run is None:
            _log_job(run, spec, dataset)
            if job.moves_from is not None and dataset is not None:
                record_egress(job, ws, run.run_id, job.moved_gb)
        ctx = TrainContext(
            spec=spec,
            workdir=workdir,
            dataset=dataset,
            sink=TeeSink([run, *sinks]),
            checkpoint_dir=checkpoint_dir,
            resume=previous_run is not None,
        )
        meter = start_meter(job, ws, run)
        ctx.should_stop = meter.should_stop
        try:
            result = train(ctx)
        finally:
            record_metered(job, ws, run, meter)
        if meter.stop_reason is not None:
            # The checkpoint stays; the run ends FAILED with the tags that say why.
            raise stopped_for_budget(spec, run, meter.stop_reason)
        lineage.update(result.tags)
        source = store_trained(run, result, workdir, dataset)
        version = register(
            ws,
            spec.name,
            run_id=run.run_id,
            source=source,
            tags={f"{LINEAGE_PREFIX}{k}": str(v) for k, v in lineage.items()},
            description=spec.description,
        )
        metrics = run.metrics()
        artifact_uri = run.artifact_uri
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return JobResult(
        name=spec.name,
        version=version.version,
        run_id=run.run_id,
        experiment=job.mlflow_experiment,
        metrics=metrics,
        artifact_uri=artifact_uri,
        workspace=ws.root,
        tracking_uri=ws.tracking_uri,
        lineage={k: str(v) for k, v in lineage.items()},
    )


def store_trained(run: TrackedRun, result: Any, workdir: Path, dataset: Any) -> str:
    """Store what a training produced on its run (resolved params, tags, metrics, plots, the model
    folder with its reference profile) and return the logged model's URI, to register last."""
    if result.params:
        run.log_params({"resolved": result.params})
    run.set_tags({f"{LINEAGE_PREFIX}{k}": str(v) for k, v in result.tags.items()})
    run.log_metrics(result.metrics)
    for path in result.artifacts:
        run.log_artifact(path, "plots" if Path(path).suffix == ".png" else "reports")
    model_dir = result.model.save(workdir / "model")
    if dataset is not None:  # the reference profile that `gravityml monitor` compares with
        from gravityml.models._profile import profile_training

        profile_training(model_dir, result.model, dataset, result.metrics)
    return run.log_model(model_dir)


def _registered_result(experiment: str, ws: Workspace, version: ModelVersion) -> JobResult:
    run = ws.client.get_run(version.run_id)
    return JobResult(
        name=version.name,
        version=version.version,
        run_id=version.run_id,
        experiment=experiment,
        metrics=dict(run.data.metrics),
        artifact_uri=str(run.info.artifact_uri),
        workspace=ws.root,
        tracking_uri=ws.tracking_uri,
        lineage=version.lineage,
        already_registered=True,
    )


def _load_data(spec: JobSpec, job: PlacedJob) -> Any:
    """The job's rows, read where it runs; a move the plan chose is read from the home site's store with
    the home site's keys (``GRAVITYML_SOURCE_AWS_*`` on a cluster, the catalog's variables here), and only
    for that read: everything the job writes afterwards uses its own site's keys."""
    if spec.data is None:
        return None
    if job.moves_from is None or not job.source_store:
        return load_dataset(spec)
    source = dict(job.source_store)  # pyarrow's S3 filesystem reads AWS_ENDPOINT_URL, the region and the keys
    for target, name in job.source_key_env.items():
        value = os.environ.get(SOURCE_KEY_PREFIX + target) or os.environ.get(name)
        if not value:
            raise DataError(
                f"data.source: the plan moves {spec.data.source!r} from site {job.moves_from!r}, and the key "
                f"${name} of that site's store is not set", allowed="the home site's key, in the variable its storage names",
                got=name,
                fix=f"export {name}=<site {job.moves_from}'s key> where the job is submitted",
            )
        source[target] = value
    saved = {k: os.environ.get(k) for k in source}
    os.environ.update(source)
    try:
        return load_dataset(spec)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _log_job(run: TrackedRun, spec: JobSpec, dataset: Any) -> None:
    run.log_params(_spec_params(spec))
    run.log_text(yaml.safe_dump(spec.document(), sort_keys=False), "job.yaml")
    environment: dict[str, Any] = {"packages": package_versions(), "hardware": describe_hardware(),
                                   "precision": spec.compute.precision}
    run.log_dict(environment, "environment.json")
    env_tags = {f"env.{k}": v for k, v in environment["packages"].items()}
    run.set_tags(env_tags)
    if dataset is not None:
        run.log_params(
            {
                "dataset.uri": dataset.uri,
                "dataset.fingerprint": dataset.fingerprint,
                "dataset.rows": len(dataset.frame),
                "dataset.features": len(dataset.features),
                "dataset.problem": dataset.problem or "",
            }
        )
        run.log_dict(dataset.schema().to_dict(), "schema.json")
