"""What every paradigm receives and returns. Paradigms never import MLflow: they report to a sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gravityml._typing import MetricSink, NullSink
from gravityml.data import Dataset
from gravityml.errors import TrainingError
from gravityml.models import GravityModel
from gravityml.schema import Schema
from gravityml.spec import JobSpec


def _never_stop() -> str | None:
    return None


@dataclass
class TrainContext:
    """Everything a paradigm needs to train one job.

    ``workdir`` is a scratch folder the paradigm may write artefacts into; ``checkpoint_dir`` a
    folder that survives a crash (``resume`` says whether to continue from it). ``should_stop``
    returns a reason when the job must stop early (a budget cap, say) and ``None`` otherwise; a
    paradigm with a loop polls it between steps, checkpoints, and stops cleanly.
    """

    spec: JobSpec
    workdir: Path
    dataset: Dataset | None = None
    sink: MetricSink = field(default_factory=NullSink)
    checkpoint_dir: Path | None = None
    resume: bool = False
    should_stop: Callable[[], str | None] = _never_stop


@dataclass
class TrainResult:
    """A trained model with its final metrics and the files worth keeping.

    ``metrics`` are namespaced (``test/accuracy``); ``artifacts`` are paths to log (PNG, JSON);
    ``params`` are the resolved settings the model was trained with; ``tags`` explain decisions
    (why training stopped, which precision ``auto`` chose, ...).
    """

    model: GravityModel
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: list[Path] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def require_two_classes(dataset: Dataset, schema: Schema) -> None:
    """A classification target with a single class cannot be learnt: say so before fitting."""
    if dataset.problem == "classification" and len(schema.classes or ()) < 2:
        raise TrainingError(
            f"data.target: column {dataset.target!r} has a single class",
            allowed="at least 2 classes",
            got=list(schema.classes or ()),
            fix="give rows of at least two classes, or set data.problem: regression",
        )
