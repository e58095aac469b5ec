"""Predictors, batch scoring, the inference server and exports (layer 4).

This package never imports ``paradigms``, ``placement`` or ``execution``: a serving install carries
no training code.
"""

from typing import TYPE_CHECKING, Any

from gravityml.inference._batch import BatchResult, predict_file, score_frame
from gravityml.inference._export import ExportReport, export_model
from gravityml.inference._load import load
from gravityml.inference._onnx import OnnxModel, is_export_dir
from gravityml.inference._rollout import RolloutResult, rollout

if TYPE_CHECKING:
    from gravityml.inference._server import ServeConfig, create_app, serve

_SERVER = ("ServeConfig", "create_app", "serve")


def __getattr__(name: str) -> Any:
    # The server pulls in FastAPI and uvicorn: batch scoring and export do not pay for them.
    if name in _SERVER:
        from gravityml.inference import _server

        return getattr(_server, name)
    raise AttributeError(f"module 'gravityml.inference' has no attribute {name!r}")

__all__ = [
    "BatchResult",
    "ExportReport",
    "OnnxModel",
    "RolloutResult",
    "ServeConfig",
    "create_app",
    "export_model",
    "is_export_dir",
    "load",
    "predict_file",
    "rollout",
    "score_frame",
    "serve",
]
