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
        # Reinforcement, Stable-Baselines3 backed.
        _row("ppo", "reinforcement", "sb3", "proximal policy optimisation (any action space)"),
        _row("a2c", "reinforcement", "sb3", "advantage actor-critic (any action space)"),
        _row("dqn", "reinforcement", "sb3", "deep Q-network (discrete actions)"),
        _row("sac", "reinforcement", "sb3", "soft actor-critic (continuous actions)"),
        _row("td3", "reinforcement", "sb3", "twin delayed DDPG (continuous actions)"),
        # Supervised, PyTorch backed (paradigms/deep): tabular, images, text.
        _row("mlp", "supervised", "torch", "multi-layer perceptron for tables"),
        _row("cnn", "supervised", "torch", "small residual convolutional net for images"),
        _row("text", "supervised", "torch", "embedding-bag text classifier (own vocabulary)"),
    ]
)


def model_types_for(task: str) -> list[str]:
    """The model type names that serve ``task``, sorted."""
    return sorted(name for name, row in MODEL_TYPES.items() if task in row.tasks)
