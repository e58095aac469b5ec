"""Rollout in the server: which version answers a request, a shadow that only listens, following an alias.

``serve NAME@production --canary NAME/7=10%`` sends that share of NAME's inference requests to
version 7. A request that carries the sticky header (``X-Canary-Key``, e.g. a user id) always goes
the same way: the key's SHA-256 is read as a point in [0, 1) and compared with the share, so a user
never flips between versions and the share holds over many users. Requests without the header are
drawn at random. A request that names a version (``/v2/models/NAME/versions/3/infer``) gets that
version. The REST and gRPC front ends both ask one :class:`Rollout` (``choose``); neither routes
on its own.

``--shadow NAME/7`` mirrors every answered request to version 7 in the background
(:class:`Mirror`): its answer is counted (and logged with its version when the prediction log is
on), compared with the champion's for classifiers, and never returned; a full shadow queue drops
the copy and counts it, so the champion's answer is never delayed or failed by the shadow.

``--follow-aliases`` (:func:`follow_aliases`) polls the registry for each ``NAME@ALIAS`` served
and, when the alias moves, loads the new version, makes it the default, and drains the old one
(unloaded once no request holds it): load, switch, drain.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gravityml.errors import ModelNotFoundError, SpecError
from gravityml.tracking import ModelRef

if TYPE_CHECKING:
    from gravityml.inference._repository import Loaded, Repository

log = logging.getLogger("gravityml.serve")

#: The request header (gRPC: metadata key) whose value pins a caller to one side of a canary.
STICKY_HEADER = "x-canary-key"
_CANARY = re.compile(r"^(?P<ref>[^=\s]+)=(?P<share>\d+(?:\.\d+)?)%$")


@dataclass(frozen=True)
class Canary:
    """``--canary REF=N%``: the version ``ref`` names gets ``share`` (0-1] of unpinned requests."""

    ref: str
    share: float


def parse_canary(text: str) -> Canary:
    """``NAME/7=10%`` -> Canary("NAME/7", 0.10); a typed error for anything else."""
    match = _CANARY.match(text.strip())
    if not match:
        raise SpecError("--canary", f"{text!r} is not REF=SHARE%", allowed="NAME/VERSION=N% (or NAME@ALIAS=N%)",
                        got=text, fix="write e.g. --canary tumor/7=10%")
    share = float(match.group("share"))
    if not 0.0 < share <= 100.0:
        raise SpecError("--canary", f"the share {match.group('share')}% is outside 0-100%", allowed="0 < N <= 100",
                        got=text, fix="give the challenger's share of requests, e.g. --canary tumor/7=10%")
    return Canary(_registry_ref("--canary", match.group("ref")), share / 100)


def _registry_ref(flag: str, ref: str) -> str:
    parsed = ModelRef.parse(ref)  # a SpecError for what is no reference
    if parsed.version is None and parsed.alias is None:
        raise SpecError(flag, f"{ref!r} names no version", allowed="NAME/VERSION or NAME@ALIAS", got=ref,
                        fix=f"name the version, e.g. {flag} {parsed.name}/7")
    return ref


def check_flags(refs: Sequence[str], canaries: Sequence[str], shadows: Sequence[str],
                follow_aliases: bool = False) -> tuple[list[Canary], list[str]]:
    """The ``--canary`` and ``--shadow`` values of ``serve REFS``, checked before anything loads.

    Each must name a version of a model served (by name; a model folder's name is checked once it
    is loaded), at most one canary and one shadow per name; ``--follow-aliases`` needs a NAME@ALIAS.
    """
    parsed = [parse_canary(c) for c in canaries]
    shadow_refs = [_registry_ref("--shadow", s.strip()) for s in shadows]
    names = {ModelRef.parse(r).name for r in refs if not Path(r).exists() and _is_ref(r)}
    folders = any(Path(r).exists() or not _is_ref(r) for r in refs)
    for flag, items in (("--canary", [c.ref for c in parsed]), ("--shadow", shadow_refs)):
        seen: set[str] = set()
        for ref in items:
            name = ModelRef.parse(ref).name
            if name not in names and not folders:
                raise SpecError(flag, f"{ref!r} is a version of {name!r}, which this server does not serve",
                                allowed=sorted(names), got=ref,
                                fix=f"name a version of a model served, e.g. {flag} {sorted(names)[0]}/2" if names
                                else "serve the model too")
            if name in seen:
                raise SpecError(flag, f"{name!r} is named twice", allowed=f"one {flag} per model", got=list(items),
                                fix=f"keep one {flag} for {name!r}")
            seen.add(name)
    if follow_aliases and not any(_is_ref(r) and ModelRef.parse(r).alias for r in refs):
        raise SpecError("--follow-aliases", "no model is served by alias", allowed="a ref NAME@ALIAS", got=list(refs),
                        fix="serve e.g. tumor@production, or leave out --follow-aliases")
    return parsed, shadow_refs


def _is_ref(text: str) -> bool:
    try:
        ModelRef.parse(text)
    except SpecError:
        return False
    return True


def key_point(key: str) -> float:
    """A stable point in [0, 1) for a sticky key (the first 8 bytes of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


@dataclass(frozen=True)
class Route:
    """One model name's rollout: the canary version and its share, the shadow version."""

    canary: str | None = None
    share: float = 0.0
    shadow: str | None = None


@dataclass
class Rollout:
    """The routing decision of every inference request (REST and gRPC alike), by model name."""

    routes: dict[str, Route] = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @classmethod
    def build(cls, champions: Sequence[Loaded], canaries: Sequence[Canary], shadows: Sequence[str],
              loaded: dict[str, Loaded]) -> Rollout:
        """The routes for the ``champions`` served; ``loaded`` maps each canary and shadow ref to its model."""
        names = {m.name: m.version for m in champions}
        routes: dict[str, dict[str, Any]] = {}

        def version_of(flag: str, ref: str) -> tuple[str, str]:
            model = loaded[ref]
            if model.name not in names:
                raise SpecError(flag, f"{ref!r} is model {model.name!r}, which this server does not serve",
                                allowed=sorted(names), got=ref, fix="name a version of a model served")
            if model.version == names[model.name]:
                raise SpecError(flag, f"{ref!r} is version {model.version}, the one {model.name!r} already serves",
                                allowed=f"another version of {model.name!r}", got=ref,
                                fix="name the challenger's version, e.g. NAME/7")
            return model.name, model.version

        for canary in canaries:
            name, version = version_of("--canary", canary.ref)
            routes.setdefault(name, {}).update(canary=version, share=canary.share)
        for ref in shadows:
            name, version = version_of("--shadow", ref)
            routes.setdefault(name, {})["shadow"] = version
        return cls({name: Route(**fields) for name, fields in routes.items()})

    def choose(self, name: str, version: str | None = None, key: str | None = None) -> str | None:
        """The version that answers a request for ``name`` (None: the name's default version).

        A request that names ``version`` gets it; a ``key`` (the sticky header) always lands on the
        same side of the canary; a request without one is drawn at random.
        """
        if version is not None:
            return version
        route = self.routes.get(name)
        if route is None or route.canary is None:
            return None
        point = key_point(key) if key else self._random.random()
        return route.canary if point < route.share else None

    def shadow(self, name: str, answered: str) -> str | None:
        """The version that listens to a request ``answered`` by that version (never itself)."""
        route = self.routes.get(name)
        shadow = route.shadow if route is not None else None
        return shadow if shadow != answered else None

    def pinned(self, name: str) -> frozenset[str]:
        """Versions of ``name`` the rollout names: kept loaded when the default moves away from them."""
        route = self.routes.get(name)
        return frozenset(v for v in (route.canary, route.shadow) if v) if route is not None else frozenset()


class Mirror:
    """Copies of answered requests, sent to shadow versions in the background.

    At most ``max_inflight`` copies are queued or running at once; past it a copy is dropped and
    counted. A copy never delays nor fails the request it mirrors (it starts after that answer).
    """

    def __init__(self, repo: Repository, *, metrics: Any, max_inflight: int = 64, timeout_s: float = 30.0,
                 prediction_log: Any = None) -> None:
        self.repo = repo
        self.metrics = metrics
        self.max_inflight = max(0, max_inflight)
        self.timeout_s = timeout_s
        self.prediction_log = prediction_log
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    def send(self, name: str, version: str, frame: Any, champion: Any) -> None:
        """Mirror ``frame`` (answered ``champion``, the predict frame) to ``name``'s ``version``."""
        if len(self._tasks) >= self.max_inflight:
            self.metrics.shadow(name, version, "dropped")
            return
        try:
            served = self.repo.acquire(name, version)
        except ModelNotFoundError:  # unloaded over HTTP since start
            self.metrics.shadow(name, version, "dropped")
            return
        task = asyncio.get_running_loop().create_task(self._run(served, name, version, frame, champion))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, served: Any, name: str, version: str, frame: Any, champion: Any) -> None:
        start = time.perf_counter_ns()
        try:
            predicted, _ = await asyncio.wait_for(served.batcher.submit(frame, timeout_s=self.timeout_s), self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - a shadow's failure is counted, never raised
            self.metrics.shadow(name, version, "failed")
            log.debug("shadow %s/%s failed: %s", name, version, exc)
            return
        finally:
            self.repo.release(served)
        latency_ms = (time.perf_counter_ns() - start) / 1e6
        self.metrics.shadow(name, version, "answered", seconds=latency_ms / 1000)
        if served.model.kind == "classifier" and "prediction" in predicted and "prediction" in champion:
            ours, theirs = predicted["prediction"].to_numpy(), champion["prediction"].to_numpy()
            differ = int((ours.astype(str) != theirs.astype(str)).sum()) if len(ours) == len(theirs) else len(ours)
            self.metrics.disagreements(name, version, differ, len(ours))
        if self.prediction_log is not None:
            self.prediction_log.log(frame, predicted, model_version=f"{name}/{version}", latency_ms=latency_ms,
                                    role="shadow")

    async def close(self, timeout_s: float = 10.0) -> None:
        """Let the copies in flight finish (before the batchers close)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)


async def follow_aliases(repo: Repository, rollout: Rollout, resolve: Callable[[str], str], *,
                         poll_s: float, drain_s: float = 30.0) -> None:
    """Poll the registry every ``poll_s`` for each NAME@ALIAS served; swap to the version it now names.

    Runs until cancelled. The new version is loaded (requests keep going to the old one), made the
    default, and the old one is unloaded once no request holds it; a version the rollout pins (a
    canary or shadow) stays loaded. A registry that cannot be read is logged and asked again next time.
    """
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(poll_s)
        for name, ref in repo.alias_refs():
            try:
                version = await loop.run_in_executor(None, resolve, ref)
                if version == repo.default_version(name):
                    continue
                log.info("alias %s moved to version %s: loading it", ref, version)
                served = await repo.reload(name, keep=rollout.pinned(name), drain_s=drain_s)
                log.info("now serving %s version %s (from %s)", name, served.loaded.version, ref)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep serving what is loaded; try again next poll
                log.warning("following %s: %s", ref, exc)
