"""Helpers for the unsupervised tests: train a job straight through the paradigm (no MLflow)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gravityml.data import load_dataset
from gravityml.paradigms import TrainContext, TrainResult, train
from gravityml.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TELEMETRY = EXAMPLES / "data" / "telemetry.csv"


@pytest.fixture()
def fit(tmp_path: Path) -> Callable[..., TrainResult]:
    """``fit(model_type, params, source=..., target=..., **spec)`` -> the paradigm's TrainResult."""

    def run(model_type: str, params: dict[str, Any] | None = None, *, source: str = "sklearn:iris",
            target: str | None = "target", drop: list[str] | None = None, **extra: Any) -> TrainResult:
        doc: dict[str, Any] = {
            "name": f"u-{model_type}",
            "task": "unsupervised",
            "data": {"source": source, "target": target, "drop": drop or []},
            "model": {"type": model_type, "params": params or {}},
            "compute": {"accelerator": "cpu"},
            **extra,
        }
        spec = load_spec(doc)
        workdir = tmp_path / model_type
        workdir.mkdir(exist_ok=True)
        return train(TrainContext(spec=spec, workdir=workdir, dataset=load_dataset(spec)))

    return run
