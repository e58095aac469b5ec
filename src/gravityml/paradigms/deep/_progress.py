"""A per-epoch progress bar on the terminal (stderr); silent when output is piped or logged."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any


class EpochProgress:
    """A rich progress bar over epochs that shows the latest loss and validation metric."""

    def __init__(self, name: str, epochs: int, start: int = 0) -> None:
        self._bar: Any = None
        if not sys.stderr.isatty():
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
        if self._bar is None:
            return
        shown = [f"{k.split('/')[-1] if k.startswith('train/') else k} {v:.4f}" for k, v in metrics.items() if k in ("train/loss", "val/loss", "val/accuracy")]
        self._bar.update(self._task, completed=epoch + 1, info="  ".join(shown))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
