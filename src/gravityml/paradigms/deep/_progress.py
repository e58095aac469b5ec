"""Training progress: a bar on a terminal, one plain line per epoch when output is piped or logged.

A long run whose output goes to a file or a CI log must not look hung: off a terminal each epoch
(or evaluation) prints one line to stderr, flushed, such as
``digits-cnn epoch 3/20  loss 0.4123  val/loss 0.3391  val/accuracy 0.9012  5,210 samples/s  12.4 s``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any, TextIO

_QUIET: ContextVar[bool] = ContextVar("gravityml_quiet_progress", default=False)
_SHOWN = ("train/loss", "val/loss", "val/accuracy")


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No progress output inside (trial runs such as the precision probes)."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


def progress_line(name: str, step: str, metrics: Mapping[str, float], *, began: float, stream: TextIO | None = None) -> None:
    """One flushed line on stderr (off a terminal): what, where it is, the shown metrics, elapsed time."""
    if _QUIET.get():
        return
    out = stream or sys.stderr
    shown = [f"{k.removeprefix('train/')} {v:.4f}" for k, v in metrics.items() if k in _SHOWN]
    if "time/samples_per_s" in metrics:
        shown.append(f"{metrics['time/samples_per_s']:,.0f} samples/s")
    shown.append(f"{time.perf_counter() - began:.1f} s")
    print(f"{name} {step}  " + "  ".join(shown), file=out, flush=True)


def note(text: str, *, began: float) -> None:
    """``text`` and the elapsed seconds as one flushed stderr line, only off a terminal (logs, files)."""
    if not _QUIET.get() and not sys.stderr.isatty():
        print(f"{text}  {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)


class EpochProgress:
    """A rich progress bar over epochs on a terminal; one line per epoch elsewhere."""

    def __init__(self, name: str, epochs: int, start: int = 0) -> None:
        self._bar: Any = None
        self._name, self._epochs, self._began = name, epochs, time.perf_counter()
        self._quiet = _QUIET.get()
        self._lines = not self._quiet and not sys.stderr.isatty()
        if self._quiet or self._lines:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task(f"{name} epochs", total=epochs, completed=start, info="")
        self._bar.start()

    def update(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self._lines:
            progress_line(self._name, f"epoch {epoch + 1}/{self._epochs}", metrics, began=self._began)
        if self._bar is None:
            return
        shown = [f"{k.split('/')[-1] if k.startswith('train/') else k} {v:.4f}" for k, v in metrics.items() if k in _SHOWN]
        self._bar.update(self._task, completed=epoch + 1, info="  ".join(shown))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
