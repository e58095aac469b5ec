"""An exported ONNX model behind the same predictor contract, run by onnxruntime.

An export folder holds ``model.onnx`` and ``metadata.json``. The metadata is the contract between a
flavor's :meth:`~gravityml.models.GravityModel.export_onnx` and every runtime (this one, and a
program on a phone that has only onnxruntime):

``inputs``
    a list of ``{"name", "columns", "datatype", "shape", "missing"}``: graph input ``name`` takes
    the training ``columns`` side by side as ``datatype`` (``FP32``, ``FP64``, ``INT64`` or
    ``STRING``) of shape ``[n, len(columns)]``; a missing value is written as ``missing``. The graph
    holds the preprocessing, so inputs are raw column values.
``outputs``
    graph output names by role: ``probabilities`` (classifiers, ``[n, n_classes]``) and optionally
    ``label``; ``prediction`` for regressors.
``label_map``
    column index of ``probabilities`` -> class label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gravityml.errors import ModelError
from gravityml.models import GravityModel, confidence_frame, interval_frame
from gravityml.schema import Schema

METADATA = "metadata.json"
ONNX_FILE = "model.onnx"
FORMAT = "gravityml-onnx"

_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}


def is_export_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / METADATA).is_file() and (path / ONNX_FILE).is_file()


def feeds_for(inputs: list[dict[str, Any]], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Graph inputs for validated rows ``frame``, as the metadata's ``inputs`` describe them."""
    feeds: dict[str, np.ndarray] = {}
    for spec in inputs:
        block = frame[spec["columns"]]
        if spec["datatype"] == "STRING":
            feeds[spec["name"]] = block.fillna(spec.get("missing", "")).astype(str).to_numpy(dtype=object)
        else:
            feeds[spec["name"]] = block.to_numpy(dtype=_NUMPY[spec["datatype"]])
    return feeds


class OnnxModel(GravityModel):
    """An export folder served through the predictor contract (``predict``, ``predict_proba``)."""

    flavor = "onnx"

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not is_export_dir(path):
            raise ModelError(
                f"{str(path)!r} is not an ONNX export folder (needs {ONNX_FILE} and {METADATA})",
                got=sorted(p.name for p in path.iterdir()) if path.is_dir() else str(path),
                fix="write one with `gravityml export REF --format onnx -o DIR`",
            )
        metadata: dict[str, Any] = json.loads((path / METADATA).read_text(encoding="utf-8"))
        super().__init__(
            kind=metadata["model"]["kind"],
            schema=Schema.from_dict(metadata["schema"]),
            meta={**metadata.get("meta", {}), "ref": metadata["model"].get("ref", str(path)), "runtime": "onnx"},
        )
        self.path = path
        self.metadata = metadata
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        label_map = metadata.get("label_map") or {}
        self._labels = [label_map[str(i)] for i in range(len(label_map))]

    def run(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The graph's outputs by role for validated rows ``frame``."""
        names = self.metadata["outputs"]
        values = self.session.run(list(names.values()), feeds_for(self.metadata["inputs"], frame))
        return dict(zip(names, values))

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = self.run(frame)
        if self.kind == "classifier":
            return confidence_frame(np.asarray(out["probabilities"], dtype=np.float64), self._labels, frame.index)
        prediction = np.asarray(out["prediction"], dtype=np.float64).reshape(len(frame))
        return interval_frame(prediction, self.meta.get("interval_half_width"), frame.index)

    def _predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.kind != "classifier":
            return super()._predict_proba(frame)
        proba = np.asarray(self.run(frame)["probabilities"], dtype=np.float64)
        return pd.DataFrame(proba, columns=[str(c) for c in self._labels], index=frame.index)

    def _save_payload(self, path: Path) -> None:
        raise ModelError("an ONNX export is already saved", got=str(self.path), fix="copy the export folder")

    @classmethod
    def _load_payload(cls, path: Path, *, kind: Any, schema: Schema, meta: dict[str, Any]) -> OnnxModel:
        return cls(path)
