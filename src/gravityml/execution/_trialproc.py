"""A budget-capped search's trials in a worker process that the search ends at the cap (layer 4).

A trial in the search's own process stops only where it looks: a deep model at its next epoch. A
scikit-learn fit, one call into a boosting library, or an epoch longer than what is left of the
budget runs on past the cap, and the search would spend more than its budget. So when the budget
caps the search, :func:`~gravityml.execution._tune.run_search` runs its trials one at a time in a
worker process (``spawn``: nothing of the search's threads, locks or OpenMP pools is inherited). The
worker reads the data once and trains trial after trial as child runs of the search, relaying each
metric to the search (ASHA prunes on them there, and the search asks the worker to stop the trial).
When the metered cost reaches the cap less :data:`STOP_GRACE_S` of the site's time, the search kills
the worker: the trial it was running is ended as stopped for budget, and the metered cost, read
after that, stays within the budget. A worker that dies (out of memory, a crash in native code) fails
its trial only; the next trial gets a new worker.
"""

from __future__ import annotations

import math
import multiprocessing
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from gravityml._typing import Metrics, MetricSink, Params, PathLikeStr
from gravityml.errors import GravityMLError, TrainingError
from gravityml.execution._job import PlacedJob
from gravityml.spec import JobSpec
from gravityml.tracking import LINEAGE_PREFIX, TrackedRun, Workspace

#: Seconds of the site's time kept back from the cap for ending the killed trial and reading the meter.
STOP_GRACE_S = 2.0
_POLL_S = 0.05


class StoppedAtCap(Exception):
    """The trial was killed because the metered cost reached the cap (less the grace)."""

    def __init__(self, reason: str, run_id: str) -> None:
        super().__init__(reason)
        self.reason, self.run_id = reason, run_id


class _Relay:
    """The worker's sink: every metric, parameter and tag of the trial goes to the search too."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def log_metrics(self, metrics: Metrics, step: int | None = None) -> None:
        self.conn.send(("metrics", {k: float(v) for k, v in metrics.items() if v is not None}, step))

    def log_params(self, params: Params) -> None:
        self.conn.send(("params", dict(params)))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.conn.send(("tags", dict(tags)))

    def log_artifact(self, path: PathLikeStr, artifact_path: str | None = None) -> None:
        pass  # stored on the trial's own run by the worker


class _Inbox:
    """The trial's ``should_stop``: the reason the search sent (ASHA pruned the trial), once it has."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.reason = conn, None

    def should_stop(self) -> str | None:
        while self.reason is None and self.conn.poll():
            sent = self.conn.recv()
            if sent[0] == "stop":
                self.reason = sent[1]
        return self.reason


def _serve(conn: Connection, job_json: str, ws: Workspace, parent_run_id: str) -> None:
    """The worker: read the data once, then run each trial the search sends until it says exit."""
    from gravityml.execution._local import _load_data
    from gravityml.execution._tune import _one_trial

    job = PlacedJob.from_json(job_json)
    try:
        dataset = _load_data(job.load_spec(), job)
    except GravityMLError as err:
        conn.send(("failed", err))
        return
    parent = TrackedRun(ws, parent_run_id)
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the search is gone
            return
        if message[0] == "exit":
            return
        _, spec, number, values = message
        try:
            result, run_id, source = _one_trial(spec, job, ws, parent, number, values, dataset, [_Relay(conn)],
                                                _Inbox(conn).should_stop, on_start=lambda rid: conn.send(("started", rid)))
        except GravityMLError as err:
            conn.send(("failed", err))
        except BaseException:  # a defect, not the user's: the search raises it with the worker's traceback
            conn.send(("crashed", traceback.format_exc()))
            return
        else:
            conn.send(("done", {k: float(v) for k, v in result.metrics.items()}, run_id, source))


class TrialWorker:
    """Runs trials in a worker process and kills it at ``deadline`` (a ``time.monotonic()`` value)."""

    def __init__(self, job: PlacedJob, ws: Workspace, parent_run_id: str, meter: Any) -> None:
        self.job, self.ws, self.parent_run_id, self.meter = job, ws, parent_run_id, meter
        self._proc: Any = None
        self._conn: Connection | None = None
        #: What the grace costs at the site's rate: a trial starts only if it fits under the cap less this.
        self.reserve_usd = STOP_GRACE_S / 3600.0 * meter.rate_usd_per_hour
        self.startup_s = 0.0

    def deadline(self) -> float:
        return time.monotonic() + self.meter.seconds_left() - STOP_GRACE_S

    def start(self) -> None:
        """Start the worker (if none is running) and wait until it has read the data."""
        if self._proc is not None and self._proc.is_alive():
            return
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        started = time.monotonic()
        self._proc = ctx.Process(target=_serve, args=(theirs, self.job.to_json(), self.ws, self.parent_run_id),
                                 name="gravityml-trial")  # not a daemon: its estimators may start processes (n_jobs)
        self._proc.start()
        theirs.close()
        self._conn = ours
        message = self._next(self.deadline(), "", "the trial worker")
        if message[0] != "ready":
            self._unexpected(message, "the trial worker")
        self.startup_s = time.monotonic() - started

    def run(self, spec: JobSpec, number: int, values: Mapping[str, Any], sinks: Sequence[MetricSink],
            should_stop: Callable[[], str | None]) -> tuple[Metrics, str, str]:
        """One trial: (metrics, run id, model URI). Raises the trial's GravityMLError, or
        :class:`StoppedAtCap` once the worker was killed at the cap."""
        self.start()
        assert self._conn is not None
        self._conn.send(("trial", spec, number, dict(values)))
        run_id, asked_stop = "", False
        while True:
            message = self._next(self.deadline(), run_id, f"trial {number}")
            kind = message[0]
            if kind == "started":
                run_id = message[1]
            elif kind in ("metrics", "params", "tags"):
                for sink in sinks:
                    if kind == "metrics":
                        sink.log_metrics(message[1], message[2])
                    elif kind == "params":
                        sink.log_params(message[1])
                    else:
                        sink.set_tags(message[1])
                reason = should_stop()
                if reason is not None and not asked_stop:  # ASHA pruned it: the trial stops at its next epoch
                    self._conn.send(("stop", reason))
                    asked_stop = True
            elif kind == "done":
                return message[1], message[2], message[3]
            else:
                self._unexpected(message, f"trial {number}")

    def _next(self, deadline: float, run_id: str, what: str) -> tuple[Any, ...]:
        assert self._conn is not None
        while True:
            self.meter.should_stop()  # reports the metered cost on the search's run as it goes
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                cap = self.meter.cap_usd
                reason = (f"budget: {what} was stopped when the metered cost reached the cap of {cap:.4f} $ less "
                          f"{STOP_GRACE_S:.0f} s of the site's time; no new trial started")
                self.meter.stop_reason = reason
                if run_id:
                    self.ws.client.set_tag(run_id, f"{LINEAGE_PREFIX}trial_state", "stopped for budget at the cap")
                    self.ws.client.set_terminated(run_id, status="KILLED")
                raise StoppedAtCap(reason, run_id)
            try:
                if self._conn.poll(min(_POLL_S, left)):
                    message: tuple[Any, ...] = self._conn.recv()
                    return message
            except (EOFError, OSError):
                pass
            if not self._proc.is_alive() and not self._readable():
                code = self._proc.exitcode
                self._forget()
                if run_id:
                    self.ws.client.set_terminated(run_id, status="FAILED")
                raise TrainingError(f"{what} ended with its worker process (exit code {code}): it ran out of "
                                    "memory or crashed in native code", allowed="a trial that ends with its result",
                                    got=f"exit code {code}",
                                    fix="make the trials smaller (the space's largest values), or give the site "
                                        "more memory")

    def _readable(self) -> bool:
        try:
            return self._conn is not None and self._conn.poll(0)
        except (EOFError, OSError):
            return False

    def _unexpected(self, message: tuple[Any, ...], what: str) -> None:
        if message[0] == "failed":
            raise message[1]
        self._kill()
        if message[0] == "crashed":
            raise RuntimeError(f"{what} failed in its worker process:\n{message[1]}")
        raise RuntimeError(f"{what}: unexpected message from the trial worker: {message[0]!r}")

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._forget()

    def _forget(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def close(self) -> None:
        """Ask the worker to exit, and kill it if it does not."""
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            try:
                self._conn.send(("exit",))
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(5)
        self._kill()


def capped(meter: Any) -> bool:
    """Whether the search has a cap that a worker enforces (a budget, and a site that charges for time)."""
    return bool(math.isfinite(meter.seconds_left()))


__all__ = ["STOP_GRACE_S", "StoppedAtCap", "TrialWorker", "capped"]
