"""One path from a spec to the machine that runs it: ``place()`` then ``executor.run(placed job)`` (layer 4).

::

    run_job(spec)
      place(spec, catalog)          plan -> enforce policy and budget -> calibrate only where the data may be
      executor_for(placed)          LocalExecutor (this machine is at the site) | RayExecutor (the site's
                                    Ray cluster) | SparkExecutor (the site's Spark master) | SkyPilotLauncher
      executor.run(placed.job())    runs the placed job, never plans again; records where it ran

An executor has one method, ``run``; nothing above it asks which one it has. A site with no
executor can be planned and priced, and ``train`` refuses to run there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from gravityml._typing import MetricSink
from gravityml.data import LOCAL_EXECUTOR, Catalog
from gravityml.errors import ExecutorError
from gravityml.execution._job import PlacedJob
from gravityml.execution._local import JobResult, LocalExecutor
from gravityml.execution._placement import Placed, place
from gravityml.spec import JobSpec, load_spec
from gravityml.tracking import Workspace


class Executor(Protocol):
    """Runs a placed job and records where the work really ran."""

    kind: str

    def run(
        self,
        job: PlacedJob,
        *,
        workspace: Workspace,
        resume: bool = False,
        sinks: Sequence[MetricSink] = (),
        extra_tags: Mapping[str, str] | None = None,
    ) -> JobResult: ...


def executor_for(placed: Placed, *, on_log: Callable[[str], None] | None = None) -> Executor:
    """The executor of the site the job was placed on, or a one-line refusal for a site with none."""
    name, site = placed.candidate.site, placed.site
    if site.executor == LOCAL_EXECUTOR:
        return LocalExecutor(name)
    if site.spark is not None:
        from gravityml.execution._spark import SparkExecutor

        return SparkExecutor(name, site, on_log=on_log)
    if site.executor is not None:
        from gravityml.execution._ray import RayExecutor

        return RayExecutor(name, site, on_log=on_log)
    if site.launcher == "skypilot":
        from gravityml.execution._skypilot import SkyPilotLauncher

        return SkyPilotLauncher(name, site, on_log=on_log)
    raise ExecutorError(
        f"the job is placed on site {name!r}, which has no executor: it can be planned and priced, not run on",
        allowed=[n for n, s in placed.catalog.sites.items() if s.runnable],
        got=name,
        fix=f"attach a cluster (sites.{name}.executor: http://HOST:8265, the job server of `ray start --head` "
        f"there, or launcher: skypilot; see docs/sites.md), pass --site with a site that has one, or use "
        "--dry-run to place the job and record nothing",
    )


def workspace_for(placed: Placed, workspace: Workspace | None) -> Workspace:
    """The workspace, reporting to the catalog's tracking server when it names one (and the env does not)."""
    ws = workspace or Workspace.current()
    uri = placed.catalog.tracking_uri
    if uri and ws.embedded:
        ws = Workspace(root=ws.root, tracking_uri=uri, embedded=False)
    return ws.ensure()


def run_job(
    spec: JobSpec | str | Path | Mapping[str, Any],
    *,
    workspace: Workspace | None = None,
    resume: bool = False,
    sinks: Sequence[MetricSink] = (),
    extra_tags: Mapping[str, str] | None = None,
    site: str | None = None,
    catalog: Catalog | str | Path | None = None,
    on_log: Callable[[str], None] | None = None,
) -> JobResult:
    """Place ``spec`` (plan, enforce: a refused run raises before it reads data or spends), then run it
    with the executor of the chosen site, which tracks it and registers the model.

    ``site`` pins the job to one site of the catalog (policy still applies); ``on_log`` receives the
    log text of a job on a site's cluster as it arrives (default: stderr).
    """
    spec = load_spec(spec)
    placed = place(spec, site=site, catalog=catalog, workspace=workspace)
    executor = executor_for(placed, on_log=on_log)
    return executor.run(placed.job(), workspace=workspace_for(placed, workspace), resume=resume, sinks=sinks,
                        extra_tags=extra_tags)
