"""Fixtures shared by the deep-learning tests."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

import pytest

KillAfter = Callable[[subprocess.Popen, Callable[[], bool], float], None]


def _kill_after_checkpoint(proc: subprocess.Popen, checkpoint_seen: Callable[[], bool], timeout_s: float) -> None:
    """SIGKILL ``proc`` as soon as ``checkpoint_seen()``; fail if it ends first or time runs out."""
    deadline = time.monotonic() + timeout_s
    try:
        while not checkpoint_seen():
            assert proc.poll() is None, f"training ended before a checkpoint was seen: {proc.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"no checkpoint within {timeout_s:g} s"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture()
def kill_after_checkpoint() -> KillAfter:
    """``kill_after_checkpoint(proc, checkpoint_seen, timeout_s)``: a crash right after a checkpoint."""
    return _kill_after_checkpoint
