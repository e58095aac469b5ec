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
    graph output names by role: ``probabilities`` (classifiers and clusterers, ``[n, n_classes]``)
    and optionally ``label``; ``prediction`` for regressors; ``score`` and ``is_anomaly`` (``[n, 1]``)
    for anomaly detectors; ``components`` (``[n, k]``) and ``confidence`` (``[n, 1]``) for reducers.
``label_map``
    column index of ``probabilities`` -> class label (cluster id for clusterers).

A flavor whose graph takes an encoded matrix (the torch flavor: one input, one-hot and token ids
made outside the graph) gives inputs without ``columns`` and outputs as a list; such an export runs
here with the original model's ``encode`` (``serve REF --runtime onnx``), or alone when every
column is numeric and the matrix is the columns in schema order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int | None = None,
        encode: Callable[[pd.DataFrame], np.ndarray] | None = None,
    ) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not is_export_dir(path):
            raise ModelError(
                f"{str(path)!r} is not an ONNX export folder (needs {ONNX_FILE} and {METADATA})",
                allowed=f"a folder holding {ONNX_FILE} and {METADATA}",
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
        outputs = metadata["outputs"]
        self._outputs: dict[str, str] = (
            {o["name"]: o["name"] for o in outputs} if isinstance(outputs, list) else dict(outputs)
        )
        self._inputs, self._encode = self._input_plan(metadata["inputs"], encode)

    def _input_plan(
        self, inputs: list[dict[str, Any]], encode: Callable[[pd.DataFrame], np.ndarray] | None
    ) -> tuple[list[dict[str, Any]] | None, Callable[[pd.DataFrame], np.ndarray] | None]:
        if all(spec.get("columns") for spec in inputs):
            return inputs, None
        if encode is not None:
            return None, encode
        names = self.schema.feature_names
        width = (inputs[0].get("shape") or [None, None])[-1] if len(inputs) == 1 else None
        if width == len(names) and all(c.kind in ("numeric", "boolean") for c in self.schema.features):
            return [{"name": inputs[0]["name"], "columns": names, "datatype": "FP32", "missing": "NaN"}], None
        raise ModelError(
            "this export's graph takes encoded rows (one-hot / token ids made outside the graph)",
            allowed="an export whose graph takes the raw columns",
            got=[spec.get("name") for spec in inputs],
            fix="serve it by reference with the original model: gravityml serve REF --runtime onnx",
        )

    def run(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The graph's outputs by role for validated rows ``frame``."""
        if self._encode is not None:
            encoded = self._encode(frame)
            feeds = {self.metadata["inputs"][0]["name"]: encoded if encoded.dtype == np.int64 else encoded.astype(np.float32)}
        else:
            feeds = feeds_for(self._inputs or [], frame)
        values = self.session.run(list(self._outputs.values()), feeds)
        return dict(zip(self._outputs, values))

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = self.run(frame)
        if self.kind == "classifier":
            return confidence_frame(np.asarray(out["probabilities"], dtype=np.float64), self._labels, frame.index)
        if self.kind == "clusterer":
            proba = np.asarray(out["probabilities"], dtype=np.float64)
            best = np.argmax(proba, axis=1)
            return pd.DataFrame(
                {"prediction": np.asarray(self._labels)[best], "confidence": proba[np.arange(len(best)), best]},
                index=frame.index,
            )
        if self.kind == "anomaly_detector":
            score = np.asarray(out["score"], dtype=np.float64).reshape(len(frame))
            flagged = np.asarray(out["is_anomaly"], dtype=bool).reshape(len(frame))
            return pd.DataFrame(
                {"prediction": np.where(flagged, "anomaly", "normal"), "score": score, "is_anomaly": flagged},
                index=frame.index,
            )
        if self.kind == "reducer":
            comps = np.asarray(out["components"], dtype=np.float64)
            result = pd.DataFrame({f"component_{i + 1}": comps[:, i] for i in range(comps.shape[1])}, index=frame.index)
            result.insert(0, "prediction", comps[:, 0])
            result["confidence"] = np.asarray(out["confidence"], dtype=np.float64).reshape(len(frame))
            return result
        prediction = np.asarray(out["prediction"], dtype=np.float64).reshape(len(frame))
        return interval_frame(prediction, self.meta.get("interval_half_width"), frame.index)

    def _predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.kind not in ("classifier", "clusterer"):
            return super()._predict_proba(frame)
        proba = np.asarray(self.run(frame)["probabilities"], dtype=np.float64)
        return pd.DataFrame(proba, columns=[str(c) for c in self._labels], index=frame.index)

    def _save_payload(self, path: Path) -> None:
        raise ModelError("an ONNX export is already saved", allowed="a native model to save", got=str(self.path),
                         fix="copy the export folder")

    @classmethod
    def _load_payload(cls, path: Path, *, kind: Any, schema: Schema, meta: dict[str, Any]) -> OnnxModel:
        return cls(path)
