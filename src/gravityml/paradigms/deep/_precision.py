"""Precision as a measured choice: train (or evaluate) at each precision, compare, recommend.

Behind ``gravityml precision JOB.yaml`` and ``compute.precision: auto``. The tolerance is in the
metric's own units: 0.005 of accuracy is half a percentage point.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gravityml._typing import NullSink
from gravityml.compute import cheapest_within, peak_memory_mb, reset_peak_memory, resolve_device, supported_precisions
from gravityml.data import Dataset
from gravityml.models._torch import TorchModel
from gravityml.paradigms._base import TrainContext
from gravityml.paradigms._metrics import classification_metrics, regression_metrics

#: What ``precision: auto`` trains on before it decides: a seeded slice, a few epochs.
AUTO_ROWS = 2000
AUTO_EPOCHS = 3


@dataclass
class PrecisionRow:
    precision: str
    metric: float
    difference: float
    samples_per_s: float
    peak_memory_mb: float | None
    seconds: float


@dataclass
class PrecisionReport:
    """One row per precision; ``recommended`` is the fastest within ``tolerance`` of the highest."""

    metric: str
    higher_is_better: bool
    tolerance: float
    mode: str
    hardware: str
    rows: list[PrecisionRow] = field(default_factory=list)
    recommended: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _metric_of(problem: str) -> tuple[str, bool]:
    return ("accuracy", True) if problem == "classification" else ("r2", True)


def _score(model: TorchModel, frame: pd.DataFrame, y: pd.Series, problem: str) -> float:
    if problem == "classification":
        proba = model.predict_proba(frame).to_numpy()
        return classification_metrics(y.astype(str), proba, [str(c) for c in model.schema.classes or ()])["accuracy"]
    return regression_metrics(y, model.predict(frame)["prediction"].to_numpy())["r2"]


def _finish(report: PrecisionReport) -> PrecisionReport:
    reference = report.rows[0].metric
    for row in report.rows:
        row.difference = row.metric - reference
    table = {r.precision: {report.metric: r.metric, "samples_per_s": r.samples_per_s} for r in report.rows}
    report.recommended, report.reason = cheapest_within(
        table, metric=report.metric, higher_is_better=report.higher_is_better, tolerance=report.tolerance
    )
    return report


def compare_training(
    ctx: TrainContext,
    dataset: Dataset,
    *,
    precisions: list[str] | None = None,
    tolerance: float = 0.005,
    max_rows: int | None = None,
    epochs: int | None = None,
) -> PrecisionReport:
    """Train the job once per precision (same seed, data and batches) and compare on the test split.

    ``samples_per_s`` is training throughput; peak memory is the process's (CPU) or the device's
    (CUDA) high-water mark during that precision's training.
    """
    from gravityml.paradigms.deep._train import evaluate, fit_prepared, prepare, to_model

    placement = resolve_device(ctx.spec.compute.accelerator, ctx.spec.compute.devices)
    precisions = precisions or supported_precisions(placement)
    prep = prepare(ctx.spec, dataset, max_rows=max_rows)
    metric, higher = _metric_of(prep.problem)
    report = PrecisionReport(metric, higher, tolerance, "train", ", ".join(placement.names))
    # Trial runs report nowhere: their epochs must not mix with the real run's learning curve.
    quiet = replace(ctx, checkpoint_dir=None, resume=False, sink=NullSink())
    for name in precisions:
        reset_peak_memory(placement)
        began = time.perf_counter()
        fit = fit_prepared(quiet, prep, name, epochs=epochs, checkpoint=False)
        seconds = time.perf_counter() - began
        model = to_model(quiet, prep, fit)
        value = evaluate(model, prep, "test")[0][f"test/{metric}"]
        # The median epoch, not the mean: on a shared machine one slow epoch should not decide.
        speed = float(np.median([h["time/samples_per_s"] for h in fit.history])) if fit.history else fit.samples_per_s
        report.rows.append(PrecisionRow(name, value, 0.0, speed, peak_memory_mb(placement), seconds))
    return _finish(report)


def compare_inference(
    model: TorchModel, frame: pd.DataFrame, y: pd.Series, *, precisions: list[str] | None = None, tolerance: float = 0.005, repeats: int = 3
) -> PrecisionReport:
    """Evaluate a trained model at each precision the CPU offers; samples/s is inference throughput."""
    placement = resolve_device("cpu")
    precisions = precisions or supported_precisions(placement)
    problem = "classification" if model.kind == "classifier" else "regression"
    metric, higher = _metric_of(problem)
    report = PrecisionReport(metric, higher, tolerance, "inference", ", ".join(placement.names))
    validated = model.prepare(frame)
    for name in precisions:
        variant = model.with_precision(name)
        variant.predict(validated.iloc[:8])  # warm-up: first calls pay for kernel selection
        reset_peak_memory(placement)
        began = time.perf_counter()
        for _ in range(repeats):
            value = _score(variant, validated, y, problem)
        seconds = time.perf_counter() - began
        report.rows.append(
            PrecisionRow(name, value, 0.0, repeats * len(validated) / max(seconds, 1e-9), peak_memory_mb(placement), seconds)
        )
    return _finish(report)


def auto_precision(ctx: TrainContext, dataset: Dataset) -> tuple[str, str, Path]:
    """``precision: auto``: compare precisions on a slice and return (choice, reason, report path).

    The decision is kept beside the checkpoint, so a resumed run trains at the same precision.
    """
    saved = Path(ctx.checkpoint_dir) / "precision.json" if ctx.checkpoint_dir else None
    if saved is not None and ctx.resume and saved.exists():
        data = json.loads(saved.read_text(encoding="utf-8"))
        report_path = ctx.workdir / "precision_auto.json"
        report_path.write_text(json.dumps(data, indent=1), encoding="utf-8")
        return data["recommended"], data["reason"] + " (decided before the resume)", report_path
    epochs = min(ctx.spec.train.epochs, AUTO_EPOCHS)
    report = compare_training(ctx, dataset, max_rows=AUTO_ROWS, epochs=epochs)
    report.reason = f"measured on {AUTO_ROWS} rows max, {epochs} epochs: {report.reason}"
    text = json.dumps(report.to_dict(), indent=1)
    if saved is not None:
        saved.write_text(text, encoding="utf-8")
    report_path = ctx.workdir / "precision_auto.json"
    report_path.write_text(text, encoding="utf-8")
    ctx.sink.log_metrics({f"precision/{r.precision}_{report.metric}": r.metric for r in report.rows})
    ctx.sink.log_metrics({f"precision/{r.precision}_samples_per_s": r.samples_per_s for r in report.rows})
    return report.recommended, report.reason, report_path


def chart_png(report: PrecisionReport, path: Path, title: str) -> Path:
    """Two panels: the metric per precision, and samples/s per precision (recommended in colour)."""
    from gravityml.paradigms._plots import _pyplot, save_figure

    plt = _pyplot()
    names = [r.precision for r in report.rows]
    colours = ["tab:green" if n == report.recommended else "tab:grey" for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    values = np.array([r.metric for r in report.rows])
    left.bar(names, values, color=colours)
    spread = max(float(values.max() - values.min()), report.tolerance)
    left.set_ylim(float(values.min()) - 2 * spread, float(values.max()) + spread)
    left.set_ylabel(f"test {report.metric}")
    left.axhline(values[0] - report.tolerance, linestyle="--", color="tab:red", linewidth=1, label="tolerance")
    left.legend(loc="lower right", fontsize="small")
    right.bar(names, [r.samples_per_s for r in report.rows], color=colours)
    right.set_ylabel(f"{report.mode} samples/s")
    fig.suptitle(f"{title}: recommended {report.recommended}")
    return save_figure(fig, path)
