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
            return confidence_frame(self._proba(frame), self._pipeline_classes(), frame.index)
        return interval_frame(np.asarray(self.pipeline.predict(frame)), self.meta.get("interval_half_width"), frame.index)

    def _predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.kind != "classifier":
            return super()._predict_proba(frame)
        return pd.DataFrame(self._proba(frame), columns=[str(c) for c in self._pipeline_classes()], index=frame.index)

    def _proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities: ``predict_proba``, or a softmax of ``decision_function`` where the
        estimator has only that (a logistic of the margin for two classes, as Platt scaling without
        the fitted slope)."""
        if hasattr(self.pipeline, "predict_proba"):
            return np.asarray(self.pipeline.predict_proba(frame), dtype="float64")
        scores = np.asarray(self.pipeline.decision_function(frame), dtype="float64")
        if scores.ndim == 1:
            scores = np.column_stack([-scores, scores]) / 2.0
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def export_onnx(self, path: Path, sample: pd.DataFrame) -> dict[str, Any]:
        from gravityml.models._sklearn_onnx import export_pipeline

        return export_pipeline(self.pipeline, kind=self.kind, schema=self.schema, path=path)

    def _pipeline_classes(self) -> list[Any]:
        if self.meta.get("label_coded"):  # your own estimator learnt codes 0..k-1 in the schema's order
            return list(self.schema.classes or ())
        return list(self.pipeline.classes_)

    def _save_payload(self, path: Path) -> None:
        joblib.dump(self.pipeline, path / PAYLOAD, compress=3)

    @classmethod
    def _load_payload(cls, path: Path, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> SklearnModel:
        return cls(joblib.load(path / PAYLOAD), kind=kind, schema=schema, meta=meta)
