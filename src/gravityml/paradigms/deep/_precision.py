"""Precision as a measured choice: train (or evaluate) at each precision, compare, recommend.

Behind ``gravityml precision JOB.yaml`` and ``compute.precision: auto``. The tolerance is in the
metric's own units: 0.005 of accuracy is half a percentage point.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gravityml._typing import NullSink
from gravityml.compute import (
    PRECISIONS,
    cheapest_within,
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
    supported_precisions,
)
from gravityml.data import Dataset
from gravityml.models._torch import TorchModel
from gravityml.paradigms._base import TrainContext
from gravityml.paradigms._metrics import classification_metrics, regression_metrics
from gravityml.paradigms.deep._progress import quiet_progress

if TYPE_CHECKING:
    from gravityml.models._keras import KerasModel
    from gravityml.paradigms.deep._train import Prepared

#: What ``precision: auto`` trains on before it decides: a seeded slice, a few epochs.
AUTO_ROWS = 2000
AUTO_EPOCHS = 3
#: Timed batches in each precision's probe (after one untimed warm-up batch).
PROBE_BATCHES = 6
#: A precision whose probe is more than this many times slower than fp32 is not trained.
SLOWDOWN_LIMIT = 3.0
#: The whole advice aims at this many fp32 trainings (probes included).
ADVICE_BUDGET = 2.0


@dataclass
class PrecisionRow:
    precision: str
    metric: float
    difference: float
    samples_per_s: float
    peak_memory_mb: float | None
    seconds: float


@dataclass
class ProbeRow:
    """A short timed run: training samples/s over ``rows`` rows (second epoch), and its wall time."""

    precision: str
    samples_per_s: float
    rows: int
    seconds: float
    stopped_early: bool = False


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
    #: Training mode: the probe of every precision, and why some were not trained (measured).
    probes: list[ProbeRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    reference_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _metric_of(problem: str) -> tuple[str, bool]:
    return ("accuracy", True) if problem == "classification" else ("r2", True)


def _score(model: TorchModel | KerasModel, frame: pd.DataFrame, y: pd.Series, problem: str) -> float:
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


def _reference(precisions: list[str]) -> str:
    return "fp32" if "fp32" in precisions else precisions[0]


def on_keras(ctx: TrainContext) -> bool:
    """Whether the job's network trains on TensorFlow (``model.type: keras``, or ``framework: tensorflow``)."""
    return ctx.spec.model.type == "keras" or ctx.spec.model.framework == "tensorflow"


def _fit(ctx: TrainContext, prep: Prepared, precision: str, keras_config: dict[str, Any] | None, **kwargs: Any) -> Any:
    """The job's own loop at ``precision``: the torch loop, or Keras' ``fit`` for a keras config."""
    if keras_config is not None:
        from gravityml.paradigms.deep._keras import fit_prepared_keras

        return fit_prepared_keras(ctx, prep, keras_config, precision, **kwargs)
    from gravityml.paradigms.deep._train import fit_prepared

    return fit_prepared(ctx, prep, precision, **kwargs)


def probe_precisions(
    ctx: TrainContext, prep: Prepared, precisions: list[str], *, slowdown_limit: float = SLOWDOWN_LIMIT,
    keras_config: dict[str, Any] | None = None,
) -> list[ProbeRow]:
    """A short timed run of the real training loop at each precision: one batch per epoch, a few epochs.

    The first epoch pays for kernel selection and is not timed; the median of the others is the
    speed. The reference (fp32) probes first; any other precision is stopped once its probe has run
    ``slowdown_limit`` times as long as the reference's whole probe, since by then it is known to be
    too slow. CPU flags say which precisions a processor can run, not how fast (fp16 on a CPU with
    AVX-512 FP16 was measured 55x slower than fp32): only a measurement decides what is worth training.
    A Keras network (``keras_config``) probes through ``model.fit`` at each dtype policy the same way.
    """
    rows = min(len(prep.X_train), max(ctx.spec.train.batch_size, 1))
    sample = replace(prep, X_train=prep.X_train[:rows], y_train=prep.y_train[:rows], X_val=None, y_val=None)
    reference = _reference(precisions)
    order = [reference, *(p for p in precisions if p != reference)]
    out: dict[str, ProbeRow] = {}
    for name in order:
        began = time.perf_counter()
        cap = None if name == reference else slowdown_limit * out[reference].seconds

        def too_long(cap: float | None = cap, began: float = began) -> str | None:
            return "probe over its time cap" if cap is not None and time.perf_counter() - began > cap else None

        with quiet_progress():
            fit = _fit(replace(ctx, should_stop=too_long), sample, name, keras_config, epochs=1 + PROBE_BATCHES, checkpoint=False)
        timed = [h["time/samples_per_s"] for h in fit.history[1:]] or [h["time/samples_per_s"] for h in fit.history]
        seconds = time.perf_counter() - began
        out[name] = ProbeRow(name, float(np.median(timed)) if timed else 0.0, rows, seconds, len(fit.history) < 1 + PROBE_BATCHES)
    return [out[p] for p in precisions]


def compare_training(
    ctx: TrainContext,
    dataset: Dataset,
    *,
    precisions: list[str] | None = None,
    tolerance: float = 0.005,
    max_rows: int | None = None,
    epochs: int | None = None,
    slowdown_limit: float = SLOWDOWN_LIMIT,
    budget: float = ADVICE_BUDGET,
) -> PrecisionReport:
    """Probe each precision, then train the promising ones (same seed, data, batches) and compare on test.

    1. :func:`probe_precisions` times a few batches at each precision; one more than
       ``slowdown_limit`` times slower than fp32 is skipped, with the measured speeds as the reason.
    2. fp32 trains in full; its time sets the advice's budget (``budget`` x one fp32 training).
    3. The other precisions train in full, fastest probe first: the fastest one that beats fp32
       always (it may be the recommendation), any other only where its time, estimated from its
       probe, fits what is left of the budget; the rest are skipped with that estimate as the reason.

    ``samples_per_s`` is training throughput (the median epoch); peak memory is the process's
    (CPU) or the device's (CUDA) high-water mark during that precision's training.

    A Keras network (``model.type: keras`` or ``framework: tensorflow``) is compared the same way,
    each precision as its Keras dtype policy (bf16 -> ``mixed_bfloat16``, ...) through ``model.fit``.
    """
    from gravityml.paradigms.deep._train import evaluate, prepare, to_model

    began_all = time.perf_counter()
    placement = resolve_device(ctx.spec.compute.accelerator, ctx.spec.compute.devices)
    precisions = precisions or supported_precisions(placement)
    keras_config: dict[str, Any] | None = None
    if on_keras(ctx):
        from gravityml.paradigms.deep._keras import prepare_keras, to_keras_model

        prep, keras_config = prepare_keras(ctx.spec, dataset, max_rows=max_rows)
    else:
        prep = prepare(ctx.spec, dataset, max_rows=max_rows)
    metric, higher = _metric_of(prep.problem)
    report = PrecisionReport(metric, higher, tolerance, "train", ", ".join(placement.names))
    # Trial runs report nowhere: their epochs must not mix with the real run's learning curve.
    quiet = replace(ctx, checkpoint_dir=None, resume=False, sink=NullSink())
    report.probes = probe_precisions(quiet, prep, precisions, slowdown_limit=slowdown_limit, keras_config=keras_config)
    speed = {p.precision: p.samples_per_s for p in report.probes}
    reference = _reference(precisions)
    candidates = []
    for name in precisions:
        slower = speed[reference] / max(speed[name], 1e-12)
        if name != reference and slower > slowdown_limit:
            report.skipped[name] = (
                f"probe: {slower:.1f}x slower than {reference} ({speed[name]:,.0f} vs {speed[reference]:,.0f} "
                f"samples/s), over the {slowdown_limit:g}x limit"
            )
            if next(p for p in report.probes if p.precision == name).stopped_early:
                report.skipped[name] += f" (probe stopped at {slowdown_limit:g}x the {reference} probe's time)"
        else:
            candidates.append(name)

    def train_one(name: str) -> PrecisionRow:
        reset_peak_memory(placement)
        began = time.perf_counter()
        with quiet_progress():
            fit = _fit(quiet, prep, name, keras_config, epochs=epochs, checkpoint=False)
        seconds = time.perf_counter() - began
        if keras_config is not None:
            model: Any = to_keras_model(quiet.spec, prep, keras_config, fit.network, name)
        else:
            model = to_model(quiet, prep, fit)
        value = evaluate(model, prep, "test")[0][f"test/{metric}"]
        # The median epoch, not the mean: on a shared machine one slow epoch should not decide.
        rate = float(np.median([h["time/samples_per_s"] for h in fit.history])) if fit.history else fit.samples_per_s
        return PrecisionRow(name, value, 0.0, rate, peak_memory_mb(placement), seconds)

    trained = {reference: train_one(reference)}
    reference_seconds = trained[reference].seconds
    others = sorted((n for n in candidates if n != reference), key=lambda n: -speed[n])
    for i, name in enumerate(others):
        estimate = reference_seconds * speed[reference] / max(speed[name], 1e-12)
        left = budget * reference_seconds - (time.perf_counter() - began_all)
        promising = i == 0 and speed[name] > speed[reference]
        if promising or estimate <= left:
            trained[name] = train_one(name)
        else:
            report.skipped[name] = (
                f"probe: {speed[name] / speed[reference]:.2f}x {reference}'s speed, so about {estimate:.0f} s to train, "
                + (f"past the {left:.0f} s left of" if left > 0 else "and nothing is left of")
                + f" the advice budget ({budget:g}x one {reference} training)"
            )
    report.rows = [trained[n] for n in PRECISIONS if n in trained]
    _finish(report)
    if report.skipped:
        report.reason += "; not trained: " + "; ".join(f"{n} ({why})" for n, why in report.skipped.items())
    report.seconds = time.perf_counter() - began_all
    report.reference_seconds = reference_seconds
    return report


def compare_inference(
    model: TorchModel | KerasModel, frame: pd.DataFrame, y: pd.Series, *, precisions: list[str] | None = None,
    tolerance: float = 0.005, repeats: int = 3,
) -> PrecisionReport:
    """Evaluate a trained model at each precision the CPU offers; samples/s is inference throughput.

    A Keras model predicts at each precision as its dtype policy (``KerasModel.with_precision``)."""
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
    ctx.sink.log_metrics({f"precision/{p.precision}_probe_samples_per_s": p.samples_per_s for p in report.probes})
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
