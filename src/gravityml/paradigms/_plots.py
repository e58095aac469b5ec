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
