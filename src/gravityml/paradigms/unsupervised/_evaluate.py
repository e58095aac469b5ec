"""Evaluation without labels (cluster quality), with labels used only to evaluate (ARI, NMI; ROC
AUC, average precision, precision@k), the cluster-count search and the PNGs that show them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from gravityml.paradigms._metrics import auc_chance_bound
from gravityml.paradigms._plots import _pyplot, save_figure

#: Silhouette is quadratic in rows; above this it is computed on a seeded sample of them.
SILHOUETTE_SAMPLE = 5_000


def cluster_quality(Z: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, float]:
    """silhouette (higher is better), Davies-Bouldin (lower), Calinski-Harabasz (higher).

    Noise rows (label -1, from DBSCAN/HDBSCAN) are left out; with fewer than two clusters the
    scores are undefined and not reported.
    """
    keep = labels != -1
    out = {"n_clusters": float(len(set(labels[keep].tolist()))), "noise_share": float(1.0 - keep.mean())}
    Zk, lk = Z[keep], labels[keep]
    if len(set(lk.tolist())) < 2 or len(set(lk.tolist())) >= len(lk):
        return out
    sample = min(SILHOUETTE_SAMPLE, len(lk))
    out["silhouette"] = float(skm.silhouette_score(Zk, lk, sample_size=sample, random_state=seed))
    out["davies_bouldin"] = float(skm.davies_bouldin_score(Zk, lk))
    out["calinski_harabasz"] = float(skm.calinski_harabasz_score(Zk, lk))
    return out


def cluster_agreement(truth: pd.Series, labels: np.ndarray) -> dict[str, float]:
    """Adjusted Rand index and normalised mutual information against a label column."""
    known = truth.notna().to_numpy()
    y = truth[known].astype(str).to_numpy()
    return {
        "ari": float(skm.adjusted_rand_score(y, labels[known])),
        "nmi": float(skm.normalized_mutual_info_score(y, labels[known])),
    }


def anomaly_positive(truth: pd.Series) -> Any:
    """The label value that means "anomaly": True/1 for boolean or 0/1 labels, else the rarest value."""
    values = set(truth.dropna().tolist())
    for candidate in (True, 1, "1", "anomaly", "yes"):
        if candidate in values and len(values) == 2:
            return candidate
    return truth.value_counts().idxmin()


def anomaly_quality(truth: pd.Series, score: np.ndarray, flagged: np.ndarray, positive: Any) -> dict[str, float]:
    """ROC AUC, average precision, precision@k (k = the number of true anomalies) and the
    precision / recall / false-positive rate of the saved threshold."""
    known = truth.notna().to_numpy()
    y = (truth[known] == positive).to_numpy()
    s, f = score[known], flagged[known]
    out: dict[str, float] = {"anomaly_share": float(y.mean()), "flagged_share": float(f.mean())}
    if 0 < y.sum() < len(y):
        k = int(y.sum())
        top = np.argsort(-s, kind="stable")[:k]
        out.update(
            roc_auc=float(skm.roc_auc_score(y, s)),
            roc_auc_chance_bound=auc_chance_bound(k, len(y) - k),
            average_precision=float(skm.average_precision_score(y, s)),
            precision_at_k=float(y[top].mean()),
            precision=float(skm.precision_score(y, f, zero_division=0)),
            recall=float(skm.recall_score(y, f, zero_division=0)),
            false_positive_rate=float(f[~y].mean()),
        )
    return out


def search_cluster_count(
    fit_labels: Callable[[int], np.ndarray], Z: np.ndarray, low: int, high: int, seed: int
) -> tuple[int, dict[int, float]]:
    """The count in [low, high] with the best silhouette (Rousseeuw 1987), and the whole curve."""
    high = min(high, len(Z) - 1)
    curve: dict[int, float] = {}
    for k in range(low, high + 1):
        labels = fit_labels(k)
        if len(set(labels.tolist())) < 2:
            continue
        sample = min(SILHOUETTE_SAMPLE, len(Z))
        curve[k] = float(skm.silhouette_score(Z, labels, sample_size=sample, random_state=seed))
    best = max(curve, key=lambda k: curve[k])
    return best, curve


def cluster_count_png(curve: dict[int, float], chosen: int, path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = sorted(curve)
    ax.plot(ks, [curve[k] for k in ks], marker="o")
    ax.axvline(chosen, color="tab:red", linestyle="--", label=f"chosen: {chosen}")
    ax.set_xlabel("number of clusters")
    ax.set_ylabel("silhouette (higher is better)")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)


def projection_png(Z: np.ndarray, colour: np.ndarray | None, path: Path, title: str, legend: str) -> Path:
    """The rows on their first two principal components, coloured by cluster (or label)."""
    from sklearn.decomposition import PCA

    plt = _pyplot()
    xy = PCA(n_components=2).fit_transform(Z) if Z.shape[1] > 2 else np.pad(Z, ((0, 0), (0, 2 - Z.shape[1])))
    fig, ax = plt.subplots(figsize=(6, 6))
    if colour is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.7)
    else:
        values = np.asarray(colour).astype(str)
        for value in sorted(set(values.tolist()))[:20]:
            mask = values == value
            ax.scatter(xy[mask, 0], xy[mask, 1], s=8, alpha=0.7, label=value)
        ax.legend(title=legend, fontsize="small", markerscale=2)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.set_title(title)
    return save_figure(fig, path)


def score_histogram_png(score: np.ndarray, threshold: float, path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(score, bins=50, color="tab:blue", alpha=0.8)
    ax.axvline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_xlabel("anomaly score (higher = more anomalous)")
    ax.set_ylabel("rows")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)
