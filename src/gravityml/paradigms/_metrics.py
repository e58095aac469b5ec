"""Evaluation metrics shared by the paradigms (namespaced by the caller: ``test/``, ``train/``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm


def classification_metrics(y_true: Sequence[Any], proba: np.ndarray, classes: Sequence[Any]) -> dict[str, float]:
    """accuracy, balanced accuracy, F1 (binary: of the second class; else macro), ROC AUC, log loss."""
    # Keep the labels' own dtype: scikit-learn cannot tell the target type of an object array of ints.
    y = np.asarray(y_true)
    labels = np.asarray(classes)
    if y.dtype.kind != labels.dtype.kind:
        y, labels = y.astype(str), labels.astype(str)
    pred = labels[np.argmax(proba, axis=1)]
    out = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "f1_macro": float(skm.f1_score(y, pred, average="macro", labels=list(labels), zero_division=0)),
    }
    present = set(y.tolist())
    if len(labels) == 2:
        positive = labels[1]
        out["f1"] = float(skm.f1_score(y == positive, pred == positive, zero_division=0))
        if len(present) == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y == positive, proba[:, 1]))
    else:
        out["f1"] = out["f1_macro"]
        if present == set(labels.tolist()):
            out["roc_auc"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=list(labels)))
    if "roc_auc" in out:
        counts = [int((y == c).sum()) for c in (labels[1:] if len(labels) == 2 else labels)]
        out["roc_auc_chance_bound"] = min(auc_chance_bound(n, len(y) - n) for n in counts)
    clipped = np.clip(proba, 1e-15, 1.0)
    out["log_loss"] = float(skm.log_loss(y, clipped / clipped.sum(axis=1, keepdims=True), labels=list(labels)))
    out["ece"] = expected_calibration_error(y == pred, proba.max(axis=1))
    return out


#: Bins of the expected calibration error and the reliability diagram (Guo et al. 2017,
#: "On calibration of modern neural networks", https://arxiv.org/abs/1706.04599, use 15).
CALIBRATION_BINS = 15


def calibration_bins(correct: np.ndarray, confidence: np.ndarray, n_bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """Per equal-width confidence bin with rows in it: rows, mean confidence, accuracy."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        rows = which == b
        if rows.any():
            out.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "rows": float(rows.sum()),
                    "confidence": float(confidence[rows].mean()),
                    "accuracy": float(correct[rows].mean()),
                }
            )
    return out


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, n_bins: int = CALIBRATION_BINS) -> float:
    """ECE: the row-weighted mean gap between confidence and accuracy over confidence bins
    (Naeini et al. 2015; the top-label form of Guo et al. 2017). 0 is perfectly calibrated."""
    correct = np.asarray(correct, dtype="float64")
    confidence = np.asarray(confidence, dtype="float64")
    if len(correct) == 0:
        return float("nan")
    bins = calibration_bins(correct, confidence, n_bins)
    return float(sum(b["rows"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / len(correct))


def auc_chance_bound(n_positive: int, n_negative: int) -> float:
    """The ROC AUC a random score exceeds about 2.5% of the time with this many rows: 0.5 plus two
    standard errors of the Mann-Whitney statistic under no skill (Hanley & McNeil 1982,
    https://doi.org/10.1148/radiology.143.1.7063747), and at least 0.55."""
    if n_positive < 1 or n_negative < 1:
        return 1.0
    se = np.sqrt((n_positive + n_negative + 1) / (12.0 * n_positive * n_negative))
    return float(min(1.0, 0.5 + max(0.05, 2.0 * se)))


def chance_level(metrics: dict[str, float], split: str = "test") -> str | None:
    """Why the ``split`` metrics are no better than chance, or None when they are."""
    auc, bound = metrics.get(f"{split}/roc_auc"), metrics.get(f"{split}/roc_auc_chance_bound")
    if auc is not None and bound is not None and auc <= bound:
        return (
            f"{split} ROC AUC {auc:.3f} is within chance (a random score reaches {bound:.3f} on this many rows);"
            " the model ranks no better than a coin"
        )
    r2 = metrics.get(f"{split}/r2")
    if r2 is not None and r2 <= 0.0:
        return f"{split} R^2 {r2:.3f} <= 0: the model predicts no better than the training mean"
    return None


def regression_metrics(y_true: Sequence[float], pred: Sequence[float]) -> dict[str, float]:
    y = np.asarray(y_true, dtype="float64")
    p = np.asarray(pred, dtype="float64")
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, p))),
        "mae": float(skm.mean_absolute_error(y, p)),
        "r2": float(skm.r2_score(y, p)) if len(y) > 1 else float("nan"),
    }


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}/{k}": v for k, v in metrics.items()}


def conformal_half_width(y_true: Sequence[float], pred: Sequence[float], coverage: float = 0.9) -> float:
    """Half-width of a split-conformal interval: the ceil((n+1)·coverage)/n quantile of |residual|.

    (Lei et al. 2018, "Distribution-free predictive inference for regression", arXiv:1604.04173.)
    """
    residuals = np.abs(np.asarray(y_true, dtype="float64") - np.asarray(pred, dtype="float64"))
    n = len(residuals)
    level = min(1.0, np.ceil((n + 1) * coverage) / n)
    return float(np.quantile(residuals, level, method="higher"))
