"""Forecast and metered cost: the ledger in the workspace and the meter that caps a running job.

The ledger is JSON lines (``ledger.jsonl`` in the workspace), appended whole lines at a time: one
``forecast`` entry when a run starts and one ``metered`` entry when it ends (finished, failed or
stopped for budget). A resumed run adds another ``metered`` entry for the part it ran.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from gravityml.errors import WorkspaceError

#: ``egress`` records a data move a job made; its cost is already inside the run's ``metered`` entry.
EntryKind = Literal["forecast", "metered", "egress"]


@dataclass(frozen=True)
class Entry:
    kind: EntryKind
    run_id: str
    experiment: str
    model: str
    site: str
    offer: str
    usd: float
    status: str = ""
    hours: float = 0.0
    time: float = field(default_factory=time.time)


def append(path: Path, entry: Entry) -> None:
    """Add one line; a single ``write`` of a line in append mode keeps concurrent writers whole."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(entry), sort_keys=True) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise WorkspaceError(f"cannot write the cost ledger {str(path)!r}: {exc.strerror}", got=str(path),
                             fix="check the workspace folder's permissions") from None


def read(path: Path) -> list[Entry]:
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(Entry(**json.loads(line)))
        except (ValueError, TypeError):
            raise WorkspaceError(f"cost ledger {str(path)!r} line {number} is not a ledger entry", got=line[:80],
                                 fix="remove or repair that line") from None
    return out


def spent_usd(entries: Iterable[Entry], experiment: str) -> float:
    """Metered spend of an experiment so far."""
    return sum(e.usd for e in entries if e.kind == "metered" and e.experiment == experiment)


def summarise(entries: Iterable[Entry], by: str) -> list[dict[str, Any]]:
    """Forecast and metered USD (and runs) grouped by ``experiment``, ``model`` or ``site``."""
    groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"forecast_usd": 0.0, "metered_usd": 0.0, "runs": set()})
    for e in entries:
        if e.kind == "egress":
            continue  # counted in the metered entry of the same run
        g = groups[getattr(e, by)]
        g["forecast_usd" if e.kind == "forecast" else "metered_usd"] += e.usd
        g["runs"].add(e.run_id)
    return [
        {by: key, "runs": len(g["runs"]), "forecast_usd": g["forecast_usd"], "metered_usd": g["metered_usd"]}
        for key, g in sorted(groups.items())
    ]


class Meter:
    """Metered cost of a running job: elapsed hours x the offer's node rate x nodes, plus egress.

    :meth:`should_stop` is handed to the paradigm as ``ctx.should_stop``; it returns a reason once
    the cost crosses ``cap_usd`` (and keeps returning it), else None.
    """

    def __init__(
        self,
        *,
        hourly_usd: float,
        nodes: int,
        egress_usd: float = 0.0,
        cap_usd: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        report: Callable[[float], None] | None = None,
        report_every_s: float = 10.0,
    ) -> None:
        self.rate_usd_per_hour = hourly_usd * nodes
        self.egress_usd = egress_usd
        self.cap_usd = cap_usd
        self._clock = clock
        self._start = clock()
        self._report = report
        self._report_every_s = report_every_s
        self._last_report = self._start
        self.stop_reason: str | None = None

    @property
    def hours(self) -> float:
        return (self._clock() - self._start) / 3600.0

    @property
    def usd(self) -> float:
        return self.egress_usd + self.hours * self.rate_usd_per_hour

    def seconds_left(self) -> float:
        """Seconds of the site's time until the metered cost reaches the cap (inf without a cap or a rate)."""
        if self.cap_usd is None or self.rate_usd_per_hour <= 0:
            return math.inf
        return (self.cap_usd - self.usd) / self.rate_usd_per_hour * 3600.0

    def should_stop(self) -> str | None:
        cost = self.usd
        now = self._clock()
        if self._report is not None and now - self._last_report >= self._report_every_s:
            self._last_report = now
            self._report(cost)
        if self.stop_reason is None and self.cap_usd is not None and cost > self.cap_usd:
            self.stop_reason = f"budget: metered cost {cost:.4f} $ crossed the cap of {self.cap_usd:.4f} $"
        return self.stop_reason
