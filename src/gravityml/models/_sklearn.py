"""The scikit-learn flavor: a fitted Pipeline (preprocessing + estimator) saved with joblib."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from gravityml.models._base import GravityModel, ModelKind
from gravityml.schema import Schema

PAYLOAD = "model.joblib"


def confidence_frame(proba: np.ndarray, classes: list[Any], index: pd.Index) -> pd.DataFrame:
    """``prediction`` (the most probable class) and ``confidence`` (its probability)."""
    best = np.argmax(proba, axis=1)
    labels = np.asarray(classes, dtype=object)[best]
    return pd.DataFrame(
        {"prediction": labels, "confidence": proba[np.arange(len(best)), best].astype("float64")},
        index=index,
    )


def interval_frame(prediction: np.ndarray, half_width: float | None, index: pd.Index) -> pd.DataFrame:
    """A regressor's ``prediction`` with a ``lower``/``upper`` band (split-conformal, 90%)."""
    out = pd.DataFrame({"prediction": prediction.astype("float64")}, index=index)
    if half_width is not None:
        out["lower"] = out["prediction"] - half_width
        out["upper"] = out["prediction"] + half_width
    return out


class SklearnModel(GravityModel):
    flavor = "sklearn"

    def __init__(self, pipeline: Any, *, kind: ModelKind, schema: Schema, meta: dict[str, Any] | None = None) -> None:
        super().__init__(kind=kind, schema=schema, meta=meta)
        self.pipeline = pipeline

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.kind == "classifier":
            proba = self.pipeline.predict_proba(frame)
            return confidence_frame(proba, self._pipeline_classes(), frame.index)
        return interval_frame(np.asarray(self.pipeline.predict(frame)), self.meta.get("interval_half_width"), frame.index)

    def _predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.kind != "classifier":
            return super()._predict_proba(frame)
        proba = self.pipeline.predict_proba(frame)
        return pd.DataFrame(proba, columns=[str(c) for c in self._pipeline_classes()], index=frame.index)

    def export_onnx(self, path: Path, sample: pd.DataFrame) -> dict[str, Any]:
        from gravityml.models._sklearn_onnx import export_pipeline

        return export_pipeline(self.pipeline, kind=self.kind, schema=self.schema, path=path)

    def _pipeline_classes(self) -> list[Any]:
        return list(self.pipeline.classes_)

    def _save_payload(self, path: Path) -> None:
        joblib.dump(self.pipeline, path / PAYLOAD, compress=3)

    @classmethod
    def _load_payload(cls, path: Path, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> SklearnModel:
        return cls(joblib.load(path / PAYLOAD), kind=kind, schema=schema, meta=meta)
