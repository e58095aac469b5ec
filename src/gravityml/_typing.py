"""Aliases and protocols shared by every layer (layer 0: imports nothing of gravityml)."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Protocol, Union, runtime_checkable

PathLikeStr = Union[str, "PathLike[str]", Path]
Params = Mapping[str, Any]
Metrics = Mapping[str, float]


@runtime_checkable
class MetricSink(Protocol):
    """Where a paradigm reports what happens while it trains.

    Paradigms never import MLflow: the execution layer hands them a sink that writes to a run,
    a progress bar, or both. Keys are namespaced (``train/loss``, ``eval/accuracy``).
    """

    def log_metrics(self, metrics: Metrics, step: int | None = None) -> None: ...

    def log_params(self, params: Params) -> None: ...

    def log_artifact(self, path: PathLikeStr, artifact_path: str | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...


class NullSink:
    """A sink that drops everything (for library use without tracking)."""

    def log_metrics(self, metrics: Metrics, step: int | None = None) -> None:
        return None

    def log_params(self, params: Params) -> None:
        return None

    def log_artifact(self, path: PathLikeStr, artifact_path: str | None = None) -> None:
        return None

    def set_tags(self, tags: Mapping[str, str]) -> None:
        return None
