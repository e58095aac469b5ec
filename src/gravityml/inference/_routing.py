"""Which version answers a request: the champion, a canary share, and a shadow that only listens.

``--canary NAME/7=10%`` sends that share of requests to the challenger. A request that carries the
sticky header (``X-GravityML-Route-Key`` by default, e.g. a user id) always goes the same way: the
key is hashed (SHA-256) to a point in [0, 1) and compared with the share, so a user does not flip
between versions and the share holds over many users. Requests without the header are drawn at
random. ``--shadow NAME/7`` mirrors every request to a second version whose answer is logged and
counted, never returned. Counts and latency per version are kept for ``/metrics``.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from dataclasses import dataclass, field

from gravityml.errors import SpecError

STICKY_HEADER = "x-gravityml-route-key"
_CANARY = re.compile(r"^(?P<ref>[^=\s]+)=(?P<share>\d+(?:\.\d+)?)%$")


def parse_canary(text: str) -> tuple[str, float]:
    """``NAME/7=10%`` -> ("NAME/7", 0.10)."""
    match = _CANARY.match(text.strip())
    share = float(match.group("share")) / 100 if match else -1.0
    if not match or not 0.0 < share < 1.0:
        raise SpecError(
            "--canary",
            f"{text!r} is not REF=SHARE% with a share between 0 and 100",
            allowed="NAME/VERSION=N% with 0 < N < 100",
            got=text,
            fix="write e.g. --canary tumor/7=10%",
        )
    return match.group("ref"), share


def key_point(key: str) -> float:
    """A stable point in [0, 1) for a sticky key (the first 8 bytes of its SHA-256)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class VersionStats:
    requests: int = 0
    errors: int = 0
    latency_s: float = 0.0


@dataclass
class Router:
    """Routes requests between ``champion`` and an optional canary; names the shadow, if any."""

    champion: str
    canary: str | None = None
    share: float = 0.0
    shadow: str | None = None
    seed: int | None = None
    stats: dict[str, VersionStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.canary is not None and not 0.0 < self.share < 1.0:
            raise SpecError("--canary", "the share must be between 0 and 100%", allowed="0 < share < 100", got=self.share,
                            fix="write e.g. --canary tumor/7=10%")
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def choose(self, key: str | None = None) -> str:
        """The version that answers a request with sticky ``key`` (or none)."""
        if self.canary is None:
            return self.champion
        point = key_point(key) if key else self._draw()
        return self.canary if point < self.share else self.champion

    def _draw(self) -> float:
        with self._lock:
            return self._random.random()

    def record(self, version: str, latency_s: float, *, ok: bool = True) -> None:
        with self._lock:
            stats = self.stats.setdefault(version, VersionStats())
            stats.requests += 1
            stats.latency_s += latency_s
            stats.errors += 0 if ok else 1

    def swap(self, champion: str) -> None:
        """Make ``champion`` the version that answers (after it is loaded: load, switch, drain)."""
        with self._lock:
            self.champion = champion
