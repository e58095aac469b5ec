"""PNG artefacts (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write as PNG (100 dpi) and close ``fig``; returns ``path``."""
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion_matrix_png(y_true: Sequence[Any], y_pred: Sequence[Any], classes: Sequence[Any], path: Path, title: str) -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = min(12, 3 + 0.5 * len(classes))
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        np.asarray(y_true, dtype=object).astype(str),
        np.asarray(y_pred, dtype=object).astype(str),
        labels=[str(c) for c in classes],
        ax=ax,
        colorbar=False,
        xticks_rotation=45 if len(classes) > 4 else "horizontal",
    )
    ax.set_title(title)
    return save_figure(fig, path)


def roc_curve_png(y_true: Sequence[Any], proba: np.ndarray, classes: Sequence[Any], path: Path, title: str) -> Path:
    from sklearn.metrics import auc, roc_curve

    plt = _pyplot()
    y = np.asarray(y_true, dtype=object)
    fig, ax = plt.subplots(figsize=(6, 6))
    shown = [1] if len(classes) == 2 else range(len(classes))
    for i in shown:
        positives = y == classes[i]
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives, proba[:, i])
        ax.plot(fpr, tpr, label=f"{classes[i]} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    return save_figure(fig, path)


def predicted_vs_actual_png(y_true: Sequence[float], pred: Sequence[float], path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    y = np.asarray(y_true, dtype="float64")
    p = np.asarray(pred, dtype="float64")
    ax.scatter(y, p, s=10, alpha=0.6)
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    return save_figure(fig, path)


def reliability_png(correct: np.ndarray, confidence: np.ndarray, path: Path, title: str) -> Path:
    """Reliability diagram: accuracy against confidence per bin (a calibrated model lies on the
    diagonal), bar widths the bins, with the expected calibration error in the title."""
    from gravityml.paradigms._metrics import calibration_bins, expected_calibration_error

    plt = _pyplot()
    bins = calibration_bins(np.asarray(correct, dtype="float64"), np.asarray(confidence, dtype="float64"))
    ece = expected_calibration_error(correct, confidence)
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    lows = [b["low"] for b in bins]
    widths = [b["high"] - b["low"] for b in bins]
    ax.bar(lows, [b["accuracy"] for b in bins], width=widths, align="edge", edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="black", label="mean confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_ylabel("accuracy in the bin")
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}\nexpected calibration error {ece:.3f}")
    ax.legend(loc="upper left", fontsize="small")
    counts.bar(lows, [b["rows"] for b in bins], width=widths, align="edge", edgecolor="black")
    counts.set_xlabel("confidence (probability of the predicted class)")
    counts.set_ylabel("rows")
    counts.set_xlim(0, 1)
    return save_figure(fig, path)
