"""MLflow's ``python_function`` loader for gravityml model folders.

Every registered gravityml model is also an MLflow model whose ``MLmodel`` names this module, so
MLflow's own tools (``mlflow.pyfunc.load_model``, ``mlflow models serve``) can use it. This module
imports no MLflow: MLflow imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from gravityml.models._base import GravityModel, load_model


class _PyfuncWrapper:
    def __init__(self, model: GravityModel) -> None:
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.model.predict(frame)

    def get_raw_model(self) -> GravityModel:
        return self.model


def _load_pyfunc(data_path: str) -> _PyfuncWrapper:
    path = Path(data_path)
    return _PyfuncWrapper(load_model(path.parent if path.is_file() else path))
