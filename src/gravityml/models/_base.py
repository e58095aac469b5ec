"""The one contract every trained model keeps, and its folder format.

A model folder holds ``gravityml.json`` (flavor, kind, schema, metadata) and the flavor's payload
files. Training (``paradigms``) writes these folders; serving (``inference``) reads them with no
training code imported: a flavor is found by name in :data:`FLAVORS` and imported only when used,
so a scikit-learn model is served without importing torch.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from gravityml.errors import ModelError
from gravityml.schema import Schema

FORMAT_VERSION = 1
MANIFEST = "gravityml.json"

ModelKind = Literal["classifier", "regressor", "clusterer", "anomaly_detector", "reducer", "policy"]

#: flavor name -> "module:Class". Each paradigm's models register here; nothing is imported early.
FLAVORS: dict[str, str] = {
    "sklearn": "gravityml.models._sklearn:SklearnModel",
    "torch": "gravityml.models._torch:TorchModel",
    "keras": "gravityml.models._keras:KerasModel",  # the tensorflow extra
    "sb3": "gravityml.models._policy:PolicyModel",
    "unsupervised": "gravityml.models._unsupervised:UnsupervisedModel",
    "autoencoder": "gravityml.models._unsupervised:AutoencoderModel",
    "spark": "gravityml.models._spark:SparkModel",
}


class GravityModel(ABC):
    """A trained model: checks its input against the training schema and predicts with confidence.

    ``predict`` returns one row per input row. Every kind has a ``prediction`` column;
    classifiers add ``confidence`` (probability of the predicted class), regressors a ``lower`` /
    ``upper`` interval, clusterers ``confidence`` of the assigned cluster, anomaly detectors
    ``score`` and ``is_anomaly``, policies ``confidence`` of the chosen action where it is discrete.
    """

    flavor: ClassVar[str]

    def __init__(self, *, kind: ModelKind, schema: Schema, meta: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self.schema = schema
        self.meta: dict[str, Any] = dict(meta or {})

    # ---- the contract -------------------------------------------------------------------------

    def predict(self, X: pd.DataFrame | np.ndarray | list[Any]) -> pd.DataFrame:
        """Predictions (and confidence) for each row of ``X``."""
        frame = self.prepare(X)
        return self._predict(frame)

    def predict_proba(self, X: pd.DataFrame | np.ndarray | list[Any]) -> pd.DataFrame:
        """One column per class with its probability (classifiers and soft clusterers)."""
        frame = self.prepare(X)
        return self._predict_proba(frame)

    @property
    def classes(self) -> list[Any] | None:
        return list(self.schema.classes) if self.schema.classes is not None else None

    def prepare(self, X: pd.DataFrame | np.ndarray | list[Any]) -> pd.DataFrame:
        """``X`` as a frame checked against the training schema (arrays take the schema's order)."""
        if not isinstance(X, pd.DataFrame):
            array = np.asarray(X)
            if array.ndim == 1:
                array = array.reshape(1, -1)
            names = self.schema.feature_names
            if array.ndim != 2 or array.shape[1] != len(names):
                raise ModelError(
                    f"input has shape {array.shape}; the model takes rows of {len(names)} features",
                    allowed=f"(n, {len(names)})",
                    got=array.shape,
                    fix=f"pass rows of {len(names)} values in the order {names[:5]}...",
                )
            X = pd.DataFrame(array, columns=names)
        return self.schema.validate(X)

    @abstractmethod
    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame: ...

    def _predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        raise ModelError(
            f"a {self.kind} gives no class probabilities",
            allowed=["classifier"],
            got=self.kind,
            fix="call predict() instead",
        )

    # ---- on-device export ----------------------------------------------------------------------

    def export_onnx(self, path: Path, sample: pd.DataFrame) -> dict[str, Any]:
        """Write this model as an ONNX graph to ``path``; return its metadata.

        ``sample`` holds validated rows (``self.prepare``) for tracing. The metadata names the
        graph's inputs and outputs and how rows become input tensors (preprocessing, label map).
        Flavors that can export override this; the inference layer checks parity and quantizes.
        """
        raise ModelError(
            f"a {self.flavor} {self.kind} cannot be exported to ONNX",
            allowed="a model type whose row in the model table says onnx",
            got=f"{self.flavor}/{self.kind}",
            fix="serve it with its native runtime instead (gravityml serve REF)",
        )

    # ---- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the model folder: manifest first in memory, payload, then the manifest file."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save_payload(path)
        manifest = {
            "format_version": FORMAT_VERSION,
            "flavor": self.flavor,
            "kind": self.kind,
            "schema": self.schema.to_dict(),
            "meta": self.meta,
        }
        (path / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default), encoding="utf-8")
        return path

    @abstractmethod
    def _save_payload(self, path: Path) -> None: ...

    @classmethod
    @abstractmethod
    def _load_payload(cls, path: Path, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> GravityModel: ...


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    manifest = path / MANIFEST
    if not manifest.exists():
        raise ModelError(
            f"{str(path)!r} is not a gravityml model folder (no {MANIFEST})",
            allowed=f"a folder holding {MANIFEST}",
            got=sorted(p.name for p in path.iterdir()) if path.is_dir() else str(path),
            fix="point at a folder written by gravityml, or use a registered reference NAME[/VERSION]",
        )
    data: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
    return data


def load_model(path: str | Path) -> GravityModel:
    """Load a model folder written by :meth:`GravityModel.save`."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(
            "the model was written by a newer gravityml",
            allowed=f"format_version <= {FORMAT_VERSION}",
            got=manifest.get("format_version"),
            fix="upgrade gravityml",
        )
    flavor = manifest["flavor"]
    if flavor not in FLAVORS:
        raise ModelError(
            f"unknown model flavor {flavor!r}",
            allowed=sorted(FLAVORS),
            got=flavor,
            fix="install the gravityml version that wrote this model",
        )
    module_name, cls_name = FLAVORS[flavor].split(":")
    cls: type[GravityModel] = getattr(importlib.import_module(module_name), cls_name)
    return cls._load_payload(
        path,
        kind=manifest["kind"],
        schema=Schema.from_dict(manifest["schema"]),
        meta=manifest.get("meta", {}),
    )
