"""Unsupervised learning: clustering, anomaly detection and dimensionality reduction.

scikit-learn estimators (``train``) and a torch autoencoder (``train_autoencoder``, imported only
when used, so clustering never imports torch).
"""

from __future__ import annotations

from typing import Any

from gravityml.paradigms.unsupervised._estimators import SKLEARN_UNSUPERVISED
from gravityml.paradigms.unsupervised._train import train


def train_autoencoder(ctx: Any) -> Any:
    from gravityml.paradigms.unsupervised._autoencoder import train_autoencoder as run

    return run(ctx)


__all__ = ["SKLEARN_UNSUPERVISED", "train", "train_autoencoder"]
