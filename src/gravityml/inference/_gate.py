"""The champion/challenger gate: score two versions on the same labelled rows and decide with confidence.

Each metric's difference (challenger minus champion) gets a paired bootstrap confidence interval
(``scipy.stats.bootstrap`` over the row indices, so both models are scored on the same resampled
rows); classifiers also get McNemar's exact test on the rows where exactly one of them is right
(the binomial test of the discordant pairs, ``scipy.stats.binomtest``; McNemar 1947,
https://doi.org/10.1007/BF02295996). A challenger is promoted only when the lower end of the
interval of its improvement in the deciding metric is above the margin.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gravityml.errors import DataError, ModelError
from gravityml.inference._monitor import read_recent, schema_violations
from gravityml.models import GravityModel, load_model
from gravityml.tracking import ModelRef, Workspace, download, promote, resolve
from gravityml.tracking._registry import set_version_tags

LOWER_IS_BETTER = frozenset({"rmse", "mae"})
LATENCY_ROWS = 256
LATENCY_REPEATS = 5


@dataclass(frozen=True)
class MetricDifference:
    """A metric of both versions and the bootstrap interval of challenger minus champion."""

    name: str
    champion: float
    challenger: float
    difference: float
    low: float
    high: float
    higher_is_better: bool

    @property
    def improvement_low(self) -> float:
        """The lower end of the interval of the improvement (positive = challenger better)."""
        return self.low if self.higher_is_better else -self.high


@dataclass(frozen=True)
class Evaluation:
    """Both versions on the same rows: metrics with intervals, McNemar's test, latency and size."""

    champion: str
    challenger: str
    rows: int
    confidence: float
    metrics: list[MetricDifference]
    mcnemar: dict[str, float] | None
    latency_ms_per_row: dict[str, float]
    size_bytes: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> MetricDifference:
        for m in self.metrics:
            if m.name == name:
                return m
        raise ModelError(
            f"gate: metric {name!r} is not computed for these models",
            allowed=[m.name for m in self.metrics],
            got=name,
            fix="choose one of the allowed metrics (--metric)",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    metric: str
    margin: float
    evaluation: Evaluation | None
    alias: str
    champion: str
    challenger: str


REFUSED = "<refused by the schema>"


def _outcomes(model: GravityModel, frame: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Predictions for every row; rows the model's schema refuses (an unseen category, ...) get no answer.

    A refused row is what a request would get in production (an error), so for a classifier it
    counts as wrong; for a regressor it is NaN (and such rows are left out of both models' errors).
    """
    _, ok = schema_violations(model.schema, frame)
    out = np.full(len(frame), np.nan if model.kind == "regressor" else REFUSED, dtype=object)
    if ok.any():
        out[ok.to_numpy()] = model.predict(frame[ok])["prediction"].to_numpy()
    refused = int((~ok).sum())
    if model.kind == "regressor":
        return out.astype("float64"), refused
    return np.array([str(v) for v in out], dtype=object), refused


def _class_metrics(y: np.ndarray, pred: np.ndarray, classes: list[Any]) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Vectorised metrics of rows ``idx`` (shape (..., n)) for one model's predictions."""
    correct = (pred == y).astype("float64")
    truth = [(y == k).astype("float64") for k in classes]
    said = [(pred == k).astype("float64") for k in classes]

    def accuracy(idx: np.ndarray) -> np.ndarray:
        return correct[idx].mean(axis=-1)

    def balanced_accuracy(idx: np.ndarray) -> np.ndarray:
        recalls = []
        for t in truth:
            support = t[idx].sum(axis=-1)
            hit = (t * correct)[idx].sum(axis=-1)
            recalls.append(np.where(support > 0, hit / np.maximum(support, 1), np.nan))
        return np.nanmean(np.stack(recalls), axis=0)

    def f1_macro(idx: np.ndarray) -> np.ndarray:
        scores = []
        for t, s in zip(truth, said):
            tp = (t * s)[idx].sum(axis=-1)
            fp = ((1 - t) * s)[idx].sum(axis=-1)
            fn = (t * (1 - s))[idx].sum(axis=-1)
            denom = 2 * tp + fp + fn
            scores.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
        return np.mean(np.stack(scores), axis=0)

    return {"accuracy": accuracy, "balanced_accuracy": balanced_accuracy, "f1_macro": f1_macro}


def _regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    err = pred.astype("float64") - y.astype("float64")
    sq, ab = err**2, np.abs(err)
    return {
        "rmse": lambda idx: np.sqrt(sq[idx].mean(axis=-1)),
        "mae": lambda idx: ab[idx].mean(axis=-1),
    }


def _latency_ms(model: GravityModel, frame: pd.DataFrame) -> float:
    _, ok = schema_violations(model.schema, frame)
    rows = frame[ok].iloc[:LATENCY_ROWS]
    if rows.empty:
        return float("nan")
    model.predict(rows)  # warm-up
    times = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        model.predict(rows)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000 / len(rows))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _load(ref: str, ws: Workspace) -> tuple[GravityModel, Path, str]:
    path = Path(ref)
    if (path / "gravityml.json").exists():
        return load_model(path), path, str(path)
    version, folder = download(ws, ref)
    return load_model(folder), folder, version.ref


def evaluate(
    champion: str,
    challenger: str,
    data: str | Path | pd.DataFrame,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    workspace: Workspace | None = None,
) -> Evaluation:
    """Score ``champion`` and ``challenger`` on the labelled rows of ``data`` and compare them."""
    from scipy import stats

    ws = workspace or Workspace.current()
    a, a_dir, a_ref = _load(champion, ws)
    b, b_dir, b_ref = _load(challenger, ws)
    if a.kind != b.kind or a.kind not in ("classifier", "regressor"):
        raise ModelError(
            f"gate: {a_ref} is a {a.kind} and {b_ref} a {b.kind}; the gate compares two classifiers or two regressors",
            allowed=["classifier", "regressor"],
            got=[a.kind, b.kind],
            fix="compare versions of the same supervised model",
        )
    frame = read_recent(data)
    target = a.schema.target or b.schema.target
    if not target or target not in frame.columns:
        raise DataError(
            f"gate: the holdout rows lack the target column {target!r}",
            allowed=[target],
            got=list(frame.columns)[:20],
            fix="give labelled rows (with the target column) to --data",
        )
    frame = frame[frame[target].notna()].reset_index(drop=True)
    if len(frame) < 10:
        raise DataError("gate: fewer than 10 labelled holdout rows", allowed=">= 10 rows", got=len(frame),
                        fix="give more labelled rows to --data")
    y = frame[target].to_numpy()
    (pa, refused_a), (pb, refused_b) = _outcomes(a, frame), _outcomes(b, frame)
    mcnemar = None
    if a.kind == "classifier":
        y = np.array([str(v) for v in y], dtype=object)  # labels compared as text, as the predictions are
        classes = sorted(set(y.tolist()), key=str)
        fa, fb = _class_metrics(y, pa, classes), _class_metrics(y, pb, classes)
        right_a, right_b = pa == y, pb == y
        only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
        p_value = float(stats.binomtest(only_b, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
        mcnemar = {"champion_only_right": only_a, "challenger_only_right": only_b, "p_value": p_value}
    else:
        both = ~(np.isnan(pa) | np.isnan(pb))
        if not both.any():
            raise DataError("gate: no holdout row is accepted by both models' schemas", got=len(frame),
                            fix="give holdout rows both versions can score")
        y, pa, pb = y.astype("float64")[both], pa[both], pb[both]
        fa, fb = _regression_metrics(y, pa), _regression_metrics(y, pb)
    everything = np.arange(len(y))
    differences = []
    for name in fa:
        def statistic(idx: np.ndarray, axis: int = -1, _n: str = name) -> np.ndarray:
            idx = np.asarray(idx, dtype=np.intp)
            return fb[_n](idx) - fa[_n](idx)

        result = stats.bootstrap(
            (everything,), statistic, vectorized=True, n_resamples=n_resamples, confidence_level=confidence,
            method="percentile", random_state=np.random.default_rng(seed), batch=250,
        )
        va, vb = float(fa[name](everything)), float(fb[name](everything))
        differences.append(MetricDifference(
            name=name, champion=va, challenger=vb, difference=vb - va,
            low=float(result.confidence_interval.low), high=float(result.confidence_interval.high),
            higher_is_better=name not in LOWER_IS_BETTER,
        ))
    return Evaluation(
        champion=a_ref,
        challenger=b_ref,
        rows=len(y),
        confidence=confidence,
        metrics=differences,
        mcnemar=mcnemar,
        latency_ms_per_row={a_ref: _latency_ms(a, frame), b_ref: _latency_ms(b, frame)},
        size_bytes={a_ref: _size(a_dir), b_ref: _size(b_dir)},
        extra={"refused_rows": {a_ref: refused_a, b_ref: refused_b}},
    )


def default_metric(kind: str) -> str:
    return "accuracy" if kind == "classifier" else "rmse"


def decide(evaluation: Evaluation, metric: str, margin: float) -> tuple[bool, str]:
    """Better beyond ``margin`` with confidence: the interval's lower end of the improvement is above it."""
    m = evaluation.metric(metric)
    low = m.improvement_low
    level = f"{evaluation.confidence:.0%}"
    if low > margin:
        return True, (f"{metric} {m.challenger:.4f} vs {m.champion:.4f}: improvement at least {low:.4f} "
                      f"({level} interval) > margin {margin}")
    return False, (f"{metric} {m.challenger:.4f} vs {m.champion:.4f}: improvement not above margin {margin} "
                   f"with {level} confidence (lower end {low:.4f})")


def promote_if_better(
    challenger: str,
    alias: str,
    data: str | Path | pd.DataFrame,
    *,
    margin: float = 0.0,
    metric: str | None = None,
    confidence: float = 0.95,
    workspace: Workspace | None = None,
) -> GateDecision:
    """Promote ``challenger`` to ``alias`` only when it beats the version there; tag both with why."""
    ws = workspace or Workspace.current()
    new = resolve(ws, challenger)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        old = resolve(ws, ModelRef(new.name, alias=alias))
    except ModelError:
        old = None
    if old is None or old.version == new.version:
        reason = f"no version holds {new.name}@{alias} yet" if old is None else f"{new.ref} already holds @{alias}"
        if old is None:
            promote(ws, new.ref, alias)
        set_version_tags(ws, new.ref, {"lifecycle.gate.decision": "promoted" if old is None else "unchanged",
                                       "lifecycle.gate.reason": reason, "lifecycle.gate.time": stamp})
        return GateDecision(old is None, reason, metric or "", margin, None, alias, old.ref if old else "", new.ref)
    evaluation = evaluate(old.ref, new.ref, data, confidence=confidence, workspace=ws)
    model = load_model(download(ws, new.ref)[1])
    chosen = metric or default_metric(model.kind)
    promoted, reason = decide(evaluation, chosen, margin)
    evidence = json.dumps({
        "metric": chosen, "margin": margin, "rows": evaluation.rows, "confidence": confidence,
        "metrics": {m.name: {"champion": m.champion, "challenger": m.challenger, "low": m.low, "high": m.high}
                    for m in evaluation.metrics},
        "mcnemar": evaluation.mcnemar, "latency_ms_per_row": evaluation.latency_ms_per_row,
        "size_bytes": evaluation.size_bytes,
    }, default=str)
    decision = "promoted" if promoted else "refused"
    set_version_tags(ws, new.ref, {
        "lifecycle.gate.decision": decision, "lifecycle.gate.against": old.ref, "lifecycle.gate.alias": alias,
        "lifecycle.gate.reason": reason, "lifecycle.gate.evidence": evidence, "lifecycle.gate.time": stamp,
    })
    set_version_tags(ws, old.ref, {
        f"lifecycle.gate.challenged_by.{new.version}": decision,
        f"lifecycle.gate.challenged_by.{new.version}.reason": reason,
    })
    if promoted:
        promote(ws, new.ref, alias)
    return GateDecision(promoted, reason, chosen, margin, evaluation, alias, old.ref, new.ref)
