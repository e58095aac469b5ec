"""Supervised learning: classification and regression (scikit-learn backed here)."""

from gravityml.paradigms.supervised._estimators import (
    SKLEARN_SUPERVISED,
    build_estimator,
    build_preprocessor,
    configure_estimator,
)
from gravityml.paradigms.supervised._train import fit_pipeline, train

__all__ = [
    "SKLEARN_SUPERVISED",
    "build_estimator",
    "build_preprocessor",
    "configure_estimator",
    "fit_pipeline",
    "train",
]
