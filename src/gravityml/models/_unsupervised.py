"""Flavors for models trained without (many) labels: clusterers, anomaly detectors, reducers.

* ``unsupervised``: a fitted scikit-learn preprocessor + estimator (+ for clusterers that cannot
  place new rows, a nearest-neighbour assigner), saved with joblib.
* ``autoencoder``: the same preprocessor + a torch encoder/decoder, scored by reconstruction
  error; torch is imported only when such a model is loaded.

Anomaly detectors carry the threshold chosen at training in ``meta["threshold"]``: ``predict``
returns ``score`` (higher = more anomalous), ``is_anomaly`` (score above the threshold) and
``prediction`` (``"anomaly"`` / ``"normal"``).

:class:`DecodedClassifier` lets scikit-learn's semi-supervised estimators, which need integer labels
with ``-1`` for unlabelled rows, be saved as ordinary classifiers that answer in the user's labels.
It lives here, not with the training code, because unpickling a model must not import training code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from gravityml.models._base import GravityModel, ModelKind
from gravityml.schema import Schema

PAYLOAD = "model.joblib"
NET_STATE = "autoencoder.pt"
NET_CONFIG = "autoencoder.json"


class DecodedClassifier(ClassifierMixin, BaseEstimator):
    """A classifier working on integer codes (``-1``: unlabelled) that answers in ``classes``.

    ``fit`` takes codes; ``predict`` / ``predict_proba`` give the labels ``classes_`` and one
    probability column per class, even for classes the inner estimator never saw.
    """

    def __init__(self, estimator: Any, classes: list[Any]) -> None:
        self.estimator = estimator
        self.classes = classes
        self.classes_ = np.asarray(classes, dtype=object)

    def fit(self, X: Any, codes: Any) -> DecodedClassifier:
        self.estimator.fit(X, codes)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self.estimator, "classes_")

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = np.asarray(self.estimator.predict_proba(X), dtype="float64")
        # A kNN graph can leave a part of the rows with no path to any label: label spreading then
        # holds 0/0 for them. Such a row is equally likely any class.
        # A column per code 0..k-1, even where the estimator saw only some of them.
        codes = np.asarray(self.estimator.classes_, dtype=int)
        full = np.zeros((proba.shape[0], len(self.classes_)))
        full[:, codes] = np.nan_to_num(proba, nan=0.0)
        full[full.sum(axis=1) <= 0] = 1.0 / len(self.classes_)
        return full

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def anomaly_frame(score: np.ndarray, threshold: float, index: pd.Index) -> pd.DataFrame:
    """``score`` (higher = more anomalous), ``is_anomaly`` (score > threshold) and ``prediction``."""
    flagged = np.asarray(score, dtype="float64") > threshold
    return pd.DataFrame(
        {
            "prediction": np.where(flagged, "anomaly", "normal"),
            "score": np.asarray(score, dtype="float64"),
            "is_anomaly": flagged,
        },
        index=index,
    )


def soft_assignment(distances: np.ndarray, sigma2: float) -> np.ndarray:
    """Membership probabilities from centroid distances: a Gaussian with the clusters' spread.

    ``sigma2`` is the mean within-cluster squared distance per dimension at training, so a row as
    far from its centre as a typical member gets a confidence that reflects the neighbouring centres.
    """
    logits = -(distances**2) / (2.0 * max(sigma2, 1e-12))
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


class UnsupervisedModel(GravityModel):
    """A scikit-learn clusterer, anomaly detector or reducer behind its preprocessor."""

    flavor = "unsupervised"

    def __init__(
        self,
        preprocess: Any,
        estimator: Any,
        *,
        kind: ModelKind,
        schema: Schema,
        assigner: Any = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(kind=kind, schema=schema, meta=meta)
        self.preprocess = preprocess
        self.estimator = estimator
        self.assigner = assigner

    def embed(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows as the estimator sees them (after imputation, encoding and scaling)."""
        return np.asarray(self.preprocess.transform(frame), dtype="float64")

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        Z = self.embed(frame)
        if self.kind == "anomaly_detector":
            return anomaly_frame(-self.estimator.score_samples(Z), float(self.meta["threshold"]), frame.index)
        if self.kind == "reducer":
            return reducer_frame(self.estimator, Z, frame.index)
        proba, labels = self.cluster_proba(Z)
        best = np.argmax(proba, axis=1)
        return pd.DataFrame(
            {"prediction": labels[best], "confidence": proba[np.arange(len(best)), best]}, index=frame.index
        )

    def cluster_proba(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Membership probability per cluster, and the cluster ids of the columns."""
        if hasattr(self.estimator, "predict_proba"):
            return np.asarray(self.estimator.predict_proba(Z)), np.arange(self.estimator.n_components)
        if hasattr(self.estimator, "cluster_centers_"):
            distances = self.estimator.transform(Z)
            return soft_assignment(distances, float(self.meta["sigma2"])), np.arange(distances.shape[1])
        # DBSCAN, HDBSCAN, agglomerative: no rule for new rows, so the vote of the nearest training
        # rows decides (noise keeps its id, -1).
        return np.asarray(self.assigner.predict_proba(Z)), np.asarray(self.assigner.classes_)

    def _predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.kind != "clusterer":
            return super()._predict_proba(frame)
        proba, labels = self.cluster_proba(self.embed(frame))
        return pd.DataFrame(proba, columns=[str(c) for c in labels], index=frame.index)

    def export_onnx(self, path: Path, sample: pd.DataFrame) -> dict[str, Any]:
        """Preprocessing and estimator as one ONNX graph on raw columns (see ``_unsupervised_onnx``)."""
        from gravityml.models._unsupervised_onnx import export_unsupervised

        return export_unsupervised(self, path)

    def _save_payload(self, path: Path) -> None:
        payload = {"preprocess": self.preprocess, "estimator": self.estimator, "assigner": self.assigner}
        joblib.dump(payload, path / PAYLOAD, compress=3)

    @classmethod
    def _load_payload(cls, path: Path, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> UnsupervisedModel:
        payload = joblib.load(path / PAYLOAD)
        return cls(
            payload["preprocess"],
            payload["estimator"],
            assigner=payload["assigner"],
            kind=kind,
            schema=schema,
            meta=meta,
        )


def reducer_frame(estimator: Any, Z: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """``component_1..k``; ``prediction`` repeats the first (the main axis) so every kind has one;
    ``confidence`` is the share of the row's variance the kept components explain."""
    comps = estimator.transform(Z)
    centred = Z - estimator.mean_
    residual = ((centred - comps @ estimator.components_) ** 2).sum(axis=1)
    total = (centred**2).sum(axis=1)
    kept = np.clip(1.0 - residual / np.maximum(total, 1e-12), 0.0, 1.0)
    out = pd.DataFrame({f"component_{i + 1}": comps[:, i] for i in range(comps.shape[1])}, index=index)
    out.insert(0, "prediction", comps[:, 0])
    out["confidence"] = kept
    return out


def build_autoencoder(n_inputs: int, hidden: list[int], code: int) -> Any:
    """An MLP encoder (``hidden`` then ``code`` units) and its mirror as decoder."""
    from torch import nn

    widths = [n_inputs, *hidden, code]
    layers: list[Any] = []
    for i in range(len(widths) - 1):
        layers += [nn.Linear(widths[i], widths[i + 1]), nn.ReLU()]
    back = widths[::-1]
    for i in range(len(back) - 1):
        layers.append(nn.Linear(back[i], back[i + 1]))
        if i < len(back) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def reconstruction_error(net: Any, Z: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Mean squared reconstruction error per row (the autoencoder's anomaly score)."""
    import torch

    net.eval()
    device = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(Z), batch_size):
            x = torch.as_tensor(Z[start : start + batch_size], dtype=torch.float32, device=device)
            out.append(((net(x) - x) ** 2).mean(dim=1).cpu().numpy())
    return np.concatenate(out).astype("float64") if out else np.zeros(0)


class AutoencoderModel(GravityModel):
    """An anomaly detector: rows the network reconstructs badly score high."""

    flavor = "autoencoder"

    def __init__(self, preprocess: Any, net: Any, *, kind: ModelKind, schema: Schema, meta: dict[str, Any] | None = None) -> None:
        super().__init__(kind=kind, schema=schema, meta=meta)
        self.preprocess = preprocess
        self.net = net

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        Z = np.asarray(self.preprocess.transform(frame), dtype="float64")
        return anomaly_frame(reconstruction_error(self.net, Z), float(self.meta["threshold"]), frame.index)

    def export_onnx(self, path: Path, sample: pd.DataFrame) -> dict[str, Any]:
        """Preprocessing, network and reconstruction error as one ONNX graph on raw columns."""
        from gravityml.models._unsupervised_onnx import export_autoencoder

        return export_autoencoder(self, path)

    def _save_payload(self, path: Path) -> None:
        import torch

        joblib.dump(self.preprocess, path / PAYLOAD, compress=3)
        torch.save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, path / NET_STATE)
        (path / NET_CONFIG).write_text(json.dumps(self.meta["network"]), encoding="utf-8")

    @classmethod
    def _load_payload(cls, path: Path, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> AutoencoderModel:
        import torch

        config = json.loads((path / NET_CONFIG).read_text(encoding="utf-8"))
        net = build_autoencoder(config["n_inputs"], list(config["hidden"]), config["code"])
        net.load_state_dict(torch.load(path / NET_STATE, map_location="cpu", weights_only=True))
        return cls(joblib.load(path / PAYLOAD), net, kind=kind, schema=schema, meta=meta)
