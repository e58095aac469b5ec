"""`gravityml jobs list | logs | status | stop`: the jobs this workspace ran on sites' Ray clusters."""

from __future__ import annotations

import sys
import time

import typer

from gravityml.cli._app import app, console, table

jobs_app = typer.Typer(help="Jobs submitted to sites' Ray clusters: list, logs, status, stop.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _workspace():  # type: ignore[no-untyped-def]
    from gravityml.tracking import Workspace

    return Workspace.current()


def _state(record, ws):  # type: ignore[no-untyped-def]
    """(Ray status, MLflow run status, model version) of one job; the cluster's part says if unreachable,
    or ``lost`` when its cluster went away while the job ran (the run ended FAILED then)."""
    from gravityml.errors import ExecutorError
    from gravityml.execution._jobs import client_for
    from gravityml.execution._ray import LOST_TAG

    client = record.workspace(ws).client
    run = client.get_run(record.run_id) if record.run_id else None
    try:
        ray_status = str(client_for(record).get_job_status(record.job_id)).rsplit(".", 1)[-1]
    except ExecutorError:
        ray_status = "lost" if run is not None and LOST_TAG in run.data.tags else "unreachable"
    if run is None:  # a batch scoring job: no run; the version it scores with, and where it publishes
        return ray_status, "-", f"{record.model} -> {record.output}"
    found = client.search_model_versions(f"run_id = '{record.run_id}'")
    version = f"{record.model}/{found[0].version}" if found else ""
    return ray_status, run.info.status, version


@jobs_app.command("list")
def list_jobs(limit: int = typer.Option(20, "--limit", min=1, help="Show the most recent N jobs.")) -> None:
    """The jobs this workspace submitted: site, state on the cluster, run state, submitted, run id, model version."""
    from gravityml.execution._jobs import read_records

    ws = _workspace()
    rows = []
    for record in read_records(ws)[-limit:]:
        ray_status, run_status, version = _state(record, ws)
        submitted = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.submitted))
        rows.append((record.job_id, record.kind, record.site, ray_status, run_status, submitted, record.run_id or "-",
                     version))
    console.print(table("jobs", ["job", "kind", "site", "state", "run", "submitted", "run id", "model version"], rows))


@jobs_app.command("status")
def status_cmd(job: str = typer.Argument(..., help="Job id (gravityml jobs list).")) -> None:
    """The state of one job on its cluster, its MLflow run and its model version."""
    from gravityml.execution._jobs import find_record

    ws = _workspace()
    record = find_record(ws, job)
    ray_status, run_status, version = _state(record, ws)
    console.print(f"job      {record.job_id} on site {record.site} ({record.address})")
    console.print(f"state    {ray_status}")
    if record.run_id:
        console.print(f"run      {record.run_id} {run_status}")
        console.print(f"version  {version or '(none registered)'}")
    else:
        console.print(f"scores   {version}")


@jobs_app.command("logs")
def logs_cmd(
    job: str = typer.Argument(..., help="Job id (gravityml jobs list)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming until the job ends."),
) -> None:
    """The job's log (driver output) as the cluster keeps it.

    --follow: lines as the job writes them, until it ends; exit 0 SUCCEEDED, 1 FAILED or STOPPED, 2 cluster lost.
    """
    from gravityml.execution._jobs import client_for, find_record
    from gravityml.execution._ray import ClusterLost, lost_error
    from gravityml.execution._ray import follow as follow_logs

    record = find_record(_workspace(), job)
    client = client_for(record)

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    if follow:
        try:
            final, _ = follow_logs(client, record.job_id, out, lost_after_s=record.connect_timeout_s)
        except ClusterLost as lost:
            raise lost_error(record.site, record.address, record.job_id, lost) from None
        if final != "SUCCEEDED":
            typer.echo(f"job {record.job_id} on site {record.site} ended {final}", err=True)
            raise typer.Exit(1)
    else:
        out(client.get_job_logs(record.job_id))  # type: ignore[attr-defined]


@jobs_app.command("stop")
def stop_cmd(job: str = typer.Argument(..., help="Job id (gravityml jobs list).")) -> None:
    """Cancel the job on its cluster; its MLflow run ends KILLED and no model version is registered."""
    from gravityml.execution._jobs import client_for, find_record
    from gravityml.execution._ray import stop

    record = find_record(_workspace(), job)
    ws = record.workspace(_workspace())
    final = stop(client_for(record), record.job_id, ws, record.run_id or None)
    ran = f"; run {record.run_id} {ws.client.get_run(record.run_id).info.status}" if record.run_id else \
        " (a batch job publishes nothing when stopped)"
    console.print(f"stopped  {record.job_id} on site {record.site}: {final}{ran}")
