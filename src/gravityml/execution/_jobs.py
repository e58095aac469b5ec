"""The jobs this workspace submitted to sites' clusters: one JSON line per submission (``jobs.jsonl``).

``gravityml jobs`` reads them to find a job's cluster; the state of each job is the cluster's own
(Ray's job statuses) and the MLflow run's, never a copy kept here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from gravityml.errors import ExecutorError
from gravityml.tracking import Workspace

JOBS_FILE = "jobs.jsonl"
#: A line the remote side prints when the job fails with a user error: its one-line message follows.
ERROR_MARK = "GRAVITYML_ERROR "


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    site: str
    address: str
    run_id: str
    model: str
    experiment: str
    submitted: float
    auth_token_env: str | None = None  # the variable's name, never the token
    connect_timeout_s: float = 30.0
    tracking_uri: str | None = None  # where the job's run is tracked
    #: ``train`` (a run, maybe a version) or ``predict`` (a batch scoring job: no run; ``model`` is the
    #: NAME/VERSION it scores with, ``output`` where it publishes).
    kind: str = "train"
    output: str = ""

    def workspace(self, workspace: Workspace) -> Workspace:
        """``workspace``, reporting to the tracking server the job's run lives in."""
        if self.tracking_uri is None or self.tracking_uri == workspace.tracking_uri:
            return workspace
        return Workspace(root=workspace.root, tracking_uri=self.tracking_uri, embedded=False)


def _path(workspace: Workspace) -> Path:
    return workspace.root / JOBS_FILE


def append_record(workspace: Workspace, record: JobRecord) -> None:
    """One line, one ``write`` in append mode (concurrent submitters keep whole lines)."""
    path = _path(workspace.ensure())
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(dataclasses.asdict(record), sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)


def read_records(workspace: Workspace) -> list[JobRecord]:
    path = _path(workspace)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(JobRecord(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line cut by a crash: the job is still on its cluster
    return out


def find_record(workspace: Workspace, job_id: str) -> JobRecord:
    records = read_records(workspace)
    for record in reversed(records):
        if record.job_id == job_id:
            return record
    raise ExecutorError(
        f"no job {job_id!r} was submitted from this workspace ({workspace.root})",
        allowed=[r.job_id for r in records[-10:]],
        got=job_id,
        fix="see `gravityml jobs list` for the jobs this workspace submitted",
    )


def find_resumable(workspace: Workspace, model: str, site: str) -> JobRecord | None:
    """The last job of ``model`` on ``site`` whose run did not finish (``--resume`` continues it)."""
    for record in reversed(read_records(workspace)):
        if record.model == model and record.site == site:
            status = workspace.client.get_run(record.run_id).info.status
            return record if status != "FINISHED" else None
    return None


def client_for(record: JobRecord) -> object:
    """A job server client for the cluster that ran ``record``."""
    from gravityml.execution._ray import connect

    return connect(record.address, site=record.site, timeout_s=record.connect_timeout_s,
                   token_env=record.auth_token_env)
