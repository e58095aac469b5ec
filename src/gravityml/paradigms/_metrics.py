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
    clipped = np.clip(proba, 1e-15, 1.0)
    out["log_loss"] = float(skm.log_loss(y, clipped / clipped.sum(axis=1, keepdims=True), labels=list(labels)))
    return out


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
