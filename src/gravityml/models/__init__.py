"""Trained-model folders and the predictor contract (layer 2: no training code, no MLflow)."""

from gravityml.models._base import FLAVORS, MANIFEST, GravityModel, ModelKind, load_model, read_manifest
from gravityml.models._sklearn import SklearnModel, confidence_frame, interval_frame

__all__ = [
    "FLAVORS",
    "MANIFEST",
    "GravityModel",
    "ModelKind",
    "SklearnModel",
    "confidence_frame",
    "interval_frame",
    "load_model",
    "read_manifest",
]
