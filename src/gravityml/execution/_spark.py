"""Run a placed job on a site's Spark cluster (``executor: {spark: spark://HOST:7077}``), layer 4.

The driver is this process (PySpark's client mode, the one standalone clusters run Python in); the
site's executors read the job's table where it lives (``data.source``: a path on the site's
filesystem, an ``s3://`` prefix read by pyarrow on the executors with the site's ``storage:``, a
Delta table, ``s3a://``, a table name: :mod:`gravityml.data._spark`) and fit the ``pyspark.ml`` Pipeline; only the model and the
evaluators' numbers come back. The run reports to the catalog's one tracking server, and the
version's lineage records the site and the master the session really ran on (``gravityml.cluster``,
``gravityml.spark_master``, ``gravityml.spark_app_id``, the executors' hosts).

Before a session is opened the master is probed (TCP, ``connect_timeout_s``), and a session whose
master gives it no executor within that time is stopped: an unreachable or full cluster is one line,
never a hang. Spark's own task retries (``spark.task.maxFailures``) are the retry model; a job that
fails leaves a FAILED run and no version.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gravityml._typing import MetricSink
from gravityml.data import Site, load_catalog
from gravityml.data._spark import site_store
from gravityml.errors import ExecutorError
from gravityml.execution._job import PlacedJob, ensure_experiment, spec_digest
from gravityml.execution._local import JobResult, TeeSink, _log_job
from gravityml.execution._placement import record_metered, start_meter, stopped_for_budget
from gravityml.spec import JobSpec
from gravityml.tracking import LINEAGE_PREFIX, Workspace, register, start_run


def probe_master(master: str, timeout_s: float) -> str | None:
    """Why the master cannot be reached (None: it answers, or it is local[N] / needs no probe)."""
    if not master.startswith(("spark://", "sc://")):
        return None
    for hostport in master.split("://", 1)[1].split("/")[0].split(","):
        host, _, port = hostport.rpartition(":")
        if not host:
            host, port = hostport, "7077" if master.startswith("spark://") else "15002"
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return None
        except OSError as exc:
            why = f"{hostport}: {exc.strerror or exc}"
    return why


def open_session(site_name: str, site: Site, app: str) -> Any:
    """A Spark session on the site's master with at least one executor, or a one-line ExecutorError."""
    assert site.spark is not None
    master, timeout_s = site.spark.master, site.connect_timeout_s
    fix = (f"start the master and a worker (spark-class org.apache.spark.deploy.master.Master / ...worker.Worker "
           f"{master}), correct sites.{site_name}.executor.spark in the catalog, or raise "
           f"sites.{site_name}.connect_timeout_s")
    why = probe_master(master, timeout_s)
    if why is not None:
        raise ExecutorError(f"site {site_name!r}: cannot reach its Spark master {master!r}: {why}",
                            allowed="a Spark master that answers on its port", got=master, fix=fix)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ExecutorError(f"site {site_name!r} runs jobs on Spark, and pyspark is not installed",
                            allowed="pyspark (the spark extra)", got=master,
                            fix="pip install 'gravityml[spark]' (and Java 17)") from None
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master != master:
        active.stop()  # getOrCreate would hand back this process's session on another master
    builder = (SparkSession.builder.master(master).appName(app)
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false"))
    if site.spark.driver_host:
        builder = builder.config("spark.driver.host", site.spark.driver_host)
    # the executors' Python (batch scoring's pandas functions): the site's, else this driver's interpreter;
    # PySpark reads it from PYSPARK_PYTHON when the context starts (spark.pyspark.python only via spark-submit)
    if site.python != "python":
        os.environ["PYSPARK_PYTHON"] = site.python
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in site.spark.conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    deadline = time.monotonic() + timeout_s
    while len(session.sparkContext._jsc.sc().statusTracker().getExecutorInfos()) < 2:  # the driver is one
        if master.startswith("local") or master.startswith("sc://"):
            break
        if time.monotonic() > deadline:
            session.stop()
            raise ExecutorError(
                f"site {site_name!r}: the Spark master {master!r} gave the job no executor in {timeout_s:g} s "
                "(no worker registered, or none with the free cores and memory the job asks)",
                allowed="a master with a registered worker that has free cores", got=master, fix=fix,
            )
        time.sleep(0.2)
    return session


def active_session(master: str) -> Any:
    """The Spark session this process already has on ``master`` (None: none, or pyspark is not installed).

    A job or a batch scoring run uses it and leaves it open (a notebook's session, the tests' one)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    active = SparkSession.getActiveSession()
    return active if active is not None and active.sparkContext.master == master else None


def executor_hosts(session: Any) -> list[str]:
    infos = session.sparkContext._jsc.sc().statusTracker().getExecutorInfos()
    driver = session.sparkContext.getConf().get("spark.driver.host")
    hosts = sorted({str(i.host()) for i in infos})
    return [h for h in hosts if h != driver] or hosts


class SparkExecutor:
    """Runs placed jobs with a Spark session on the site's master; records where they ran."""

    kind = "spark"

    def __init__(self, site_name: str, site: Site, *, on_log: Callable[[str], None] | None = None) -> None:
        assert site.spark is not None, f"site {site_name!r} has no Spark cluster"
        self.site_name, self.site, self.on_log = site_name, site, on_log

    def run(
        self,
        job: PlacedJob,
        *,
        workspace: Workspace,
        resume: bool = False,
        sinks: Sequence[MetricSink] = (),
        extra_tags: Mapping[str, str] | None = None,
    ) -> JobResult:
        assert job.site == self.site_name, f"placed on {job.site!r}, handed to the executor of {self.site_name!r}"
        assert self.site.spark is not None
        from gravityml.paradigms.spark import SPARK_ESTIMATORS

        model_type = job.load_spec().model.type
        if model_type not in SPARK_ESTIMATORS:  # its trainer reads rows into this process; the site has a table
            raise ExecutorError(
                f"site {self.site_name!r} trains Spark MLlib models where its tables live; model.type {model_type!r} "
                "is not one", allowed=sorted(SPARK_ESTIMATORS), got=model_type,
                fix="choose a spark_* model type, or place the job on another site (--site, or a catalog whose "
                    "policies let the data leave)")
        active = active_session(self.site.spark.master)
        session = active or open_session(self.site_name, self.site, f"gravityml-{job.name}")
        try:
            where = {"site": self.site_name, "jurisdiction": job.jurisdiction, "executor": "spark",
                     "cluster": self.site.spark.master, "host": socket.gethostname(),
                     "spark_executor_hosts": ",".join(executor_hosts(session))}
            if self.on_log is not None:
                self.on_log(f"site {self.site_name!r}: Spark application {session.sparkContext.applicationId} on "
                            f"{self.site.spark.master}\n")
            with site_store(self.site.storage):  # s3:// tables are read from the site's store
                return run_on_spark(job, workspace=workspace, where=where, sinks=sinks, extra_tags=extra_tags,
                                    scratch=Path(self.site.workspace) if self.site.workspace else None)
        finally:
            if active is None:
                session.stop()


def _with_catalog_uri(job: PlacedJob) -> JobSpec:
    """The spec with a catalog dataset name replaced by its URI (from the catalog the job was placed with)."""
    spec = job.load_spec()
    catalog = job.plan.get("catalog", "")
    if spec.data is None or not Path(catalog).is_file():
        return spec
    entry = load_catalog(catalog).dataset_for(spec.data.source)
    if entry is None:
        return spec
    data = spec.data.model_copy(update={"source": entry[1].uri})
    return spec.model_copy(update={"data": data}).with_base_dir(spec.base_dir)


def run_on_spark(
    job: PlacedJob,
    *,
    workspace: Workspace,
    where: Mapping[str, str],
    sinks: Sequence[MetricSink] = (),
    extra_tags: Mapping[str, str] | None = None,
    scratch: Path | None = None,
) -> JobResult:
    """Train with this process's Spark session, track the run, register the model (the version last).

    The trainer reads ``data.source`` with the session (nothing is read here); the model folder is
    written by the cluster's executors into ``scratch`` (the site's ``workspace:``, which a multi-node
    cluster must share with the driver) or the workspace's own scratch folder.
    """
    from gravityml.paradigms import TrainContext, train

    spec = _with_catalog_uri(job)
    ws = workspace.ensure()
    digest = spec_digest(spec)
    lineage: dict[str, str] = {"task": spec.task, "model_type": spec.model.type, **job.plan, **dict(where),
                               "accelerator": "cpu", "precision": spec.compute.precision, "spec_sha256": digest,
                               **dict(extra_tags or {})}
    ensure_experiment(ws, job)
    root = scratch or ws.root / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    workdir = root / f"spark-{spec.name}-{digest[:8]}-{time.time_ns()}"
    workdir.mkdir()
    try:
        with start_run(ws, job.mlflow_experiment, run_name=f"{spec.name}-{spec.model.type}",
                       tags={f"{LINEAGE_PREFIX}{k}": str(v) for k, v in lineage.items()}) as run:
            _log_job(run, spec, None)
            ctx = TrainContext(spec=spec, workdir=workdir, dataset=None, sink=TeeSink([run, *sinks]))
            meter = start_meter(job, ws, run)
            ctx.should_stop = meter.should_stop
            try:
                result = train(ctx)
            finally:
                record_metered(job, ws, run, meter)
            if meter.stop_reason is not None:
                raise stopped_for_budget(spec, run, meter.stop_reason)
            lineage.update(result.tags)
            run.set_tags({f"{LINEAGE_PREFIX}{k}": str(v) for k, v in result.tags.items()})
            run.log_metrics(result.metrics)
            run.log_dict(result.model.schema.to_dict(), "schema.json")
            source = run.log_model(result.model.save(workdir / "model"))
            version = register(ws, spec.name, run_id=run.run_id, source=source,
                               tags={f"{LINEAGE_PREFIX}{k}": str(v) for k, v in lineage.items()},
                               description=spec.description)
            metrics, artifact_uri = run.metrics(), run.artifact_uri
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return JobResult(name=spec.name, version=version.version, run_id=run.run_id, experiment=job.mlflow_experiment,
                     metrics=metrics, artifact_uri=artifact_uri, workspace=ws.root, tracking_uri=ws.tracking_uri,
                     lineage={k: str(v) for k, v in lineage.items()})
