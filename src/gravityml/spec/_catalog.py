"""The model types a job spec may name, as data.

One row per ``model.type``: which tasks it serves and which backend trains it. The spec checks a
name against this table when a job is loaded; each paradigm implements the rows of its tasks, and a
contract test (``tests/paradigms/test_contract.py``) fails if a row has no implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Backend = Literal["sklearn", "torch", "sb3"]
TaskName = Literal["supervised", "unsupervised", "semi_supervised", "reinforcement"]


@dataclass(frozen=True)
class ModelType:
    name: str
    tasks: frozenset[str]
    backend: Backend
    summary: str


def _row(name: str, tasks: str, backend: Backend, summary: str) -> tuple[str, ModelType]:
    return name, ModelType(name, frozenset(tasks.split()), backend, summary)


MODEL_TYPES: dict[str, ModelType] = dict(
    [
        # Supervised, scikit-learn backed. Semi-supervised self-training wraps any of these.
        _row("logistic_regression", "supervised semi_supervised", "sklearn", "linear classifier"),
        _row("linear_regression", "supervised", "sklearn", "ordinary least squares"),
        _row("ridge", "supervised", "sklearn", "L2-regularised linear regression"),
        _row("decision_tree", "supervised semi_supervised", "sklearn", "a single CART tree"),
        _row("random_forest", "supervised semi_supervised", "sklearn", "bagged trees"),
        _row("extra_trees", "supervised semi_supervised", "sklearn", "extremely randomised trees"),
        _row(
            "hist_gradient_boosting",
            "supervised semi_supervised",
            "sklearn",
            "histogram gradient boosting",
        ),
        _row("svm", "supervised semi_supervised", "sklearn", "support vector machine (RBF)"),
        _row("knn", "supervised semi_supervised", "sklearn", "k nearest neighbours"),
        # Supervised, PyTorch backed (paradigms/deep): tabular, images, text.
        _row("mlp", "supervised", "torch", "multi-layer perceptron for tables"),
        _row("cnn", "supervised", "torch", "small residual convolutional net for images"),
        _row("text", "supervised", "torch", "embedding-bag text classifier (own vocabulary)"),
        # Unsupervised (paradigms/unsupervised): clustering, anomaly detection, reduction.
        _row("kmeans", "unsupervised", "sklearn", "k-means (mini-batch on large data); n_clusters: auto"),
        _row("gaussian_mixture", "unsupervised", "sklearn", "Gaussian mixture, soft memberships"),
        _row("dbscan", "unsupervised", "sklearn", "density-based clusters with noise"),
        _row("hdbscan", "unsupervised", "sklearn", "hierarchical density-based clusters"),
        _row("agglomerative", "unsupervised", "sklearn", "agglomerative (Ward) clustering"),
        _row("pca", "unsupervised", "sklearn", "principal components (dimensionality reduction)"),
        _row("isolation_forest", "unsupervised", "sklearn", "anomaly detection by random isolation"),
        _row("local_outlier_factor", "unsupervised", "sklearn", "anomaly detection by local density"),
        _row("one_class_svm", "unsupervised", "sklearn", "anomaly detection by a one-class SVM"),
        _row("autoencoder", "unsupervised", "torch", "anomaly detection by reconstruction error"),
        # Semi-supervised (paradigms/semi_supervised); the supervised rows above self-train.
        _row("label_spreading", "semi_supervised", "sklearn", "graph label spreading"),
        _row("label_propagation", "semi_supervised", "sklearn", "graph label propagation"),
        _row("self_training", "semi_supervised", "sklearn", "self-training around params.base"),
        _row("pseudo_label", "semi_supervised", "torch", "pseudo-labelling rounds around params.base"),
        # Reinforcement, Stable-Baselines3 backed.
        _row("ppo", "reinforcement", "sb3", "proximal policy optimisation (any action space)"),
        _row("a2c", "reinforcement", "sb3", "advantage actor-critic (any action space)"),
        _row("dqn", "reinforcement", "sb3", "deep Q-network (discrete actions)"),
        _row("sac", "reinforcement", "sb3", "soft actor-critic (continuous actions)"),
        _row("td3", "reinforcement", "sb3", "twin delayed DDPG (continuous actions)"),
    ]
)


def model_types_for(task: str) -> list[str]:
    """The model type names that serve ``task``, sorted."""
    return sorted(name for name, row in MODEL_TYPES.items() if task in row.tasks)
