"""ONNX export of the unsupervised flavors: preprocessing and estimator as one graph on raw columns.

skl2onnx converts the fitted preprocessor (and, where it has a converter, the estimator); the few
nodes that turn its outputs into what :mod:`gravityml.models._unsupervised` predicts are appended
here, so a program holding only onnxruntime gets the same answers:

* clusterers: ``label`` and ``probabilities`` (k-means: the Gaussian soft assignment of
  :func:`~gravityml.models._unsupervised.soft_assignment` over the centroid distances);
* anomaly detectors: ``score`` (higher = more anomalous) and ``is_anomaly`` (score above the
  threshold chosen at training);
* PCA: ``components`` and ``confidence`` (the share of the row's variance the components keep);
* the autoencoder: its Linear/ReLU layers as Gemm/Relu nodes, ``score`` the mean squared
  reconstruction error.

The appended nodes use only operators whose meaning has not changed since opset 9 (no ReduceSum,
whose ``axes`` moved from attribute to input in opset 13; no Clip, likewise), because skl2onnx picks
the lowest opset each converter needs and that differs between estimators.

DBSCAN, HDBSCAN and agglomerative clustering have no rule for new rows (a nearest-neighbour vote
over the training rows stands in, which skl2onnx cannot convert): those are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gravityml.errors import ModelError
from gravityml.models._sklearn_onnx import convert_pipeline, describe
from gravityml.spec import MODEL_TYPES

#: estimator class -> skl2onnx options for it (IsolationForest: add the ``score_samples`` output).
EXPORTABLE: dict[str, dict[str, Any]] = {
    "KMeans": {},
    "MiniBatchKMeans": {},
    "GaussianMixture": {},
    "IsolationForest": {"score_samples": True},
    # The converter stores the training rows and runs the neighbour search in the graph, so the file
    # grows with the training set.
    "LocalOutlierFactor": {"score_samples": True},
    "OneClassSVM": {},
    "PCA": {},
}
EXPORTABLE_TYPES = sorted(n for n, row in MODEL_TYPES.items() if "unsupervised" in row.tasks and row.onnx)


class _Graph:
    """Appends nodes (and their constants) to a converted model's graph."""

    def __init__(self, onx: Any) -> None:
        self.onx = onx
        self.graph = onx.graph
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"gml_{hint}_{self.count}"

    def const(self, value: Any, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, *inputs: str, hint: str = "t", **attrs: Any) -> str:
        from onnx import helper

        out = self.name(hint)
        self.graph.node.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def rows_sum(self, x: str, width: int, scale: float = 1.0) -> str:
        """``x.sum(axis=1, keepdims=True) * scale`` as a MatMul with a column of ``scale``."""
        return self.node("MatMul", x, self.const(np.full((width, 1), scale)))

    def set_outputs(self, outputs: dict[str, tuple[str, int, list[Any]]]) -> dict[str, str]:
        """Make ``{role: (tensor, elem_type, shape)}`` the graph's outputs; return role -> output name."""
        from onnx import helper

        taken = {name for node in self.graph.node for name in node.output}
        del self.graph.output[:]
        names: dict[str, str] = {}
        for role, (tensor, elem_type, shape) in outputs.items():
            # skl2onnx may already hold a tensor called "label": then the output takes a prefix.
            names[role] = role if role not in taken else f"gravityml_{role}"
            self.graph.node.append(helper.make_node("Identity", [tensor], [names[role]], name=f"gml_out_{role}"))
            self.graph.output.append(helper.make_tensor_value_info(names[role], elem_type, shape))
        return names


def _output(onx: Any, name: str) -> str:
    names = [o.name for o in onx.graph.output]
    if name not in names:  # pragma: no cover - a skl2onnx release that renamed its outputs
        raise ModelError("skl2onnx gave an unexpected graph", allowed=[name], got=names, fix="report this")
    return name


def _anomaly_outputs(g: _Graph, score: str, threshold: float) -> dict[str, tuple[str, int, list[Any]]]:
    from onnx import TensorProto

    flag = g.node("Greater", score, g.const([threshold], "threshold"), hint="is_anomaly")
    return {"score": (score, TensorProto.FLOAT, [None, 1]), "is_anomaly": (flag, TensorProto.BOOL, [None, 1])}


def export_unsupervised(model: Any, path: Path) -> dict[str, Any]:
    """Write ``model`` (an ``UnsupervisedModel``) as ONNX to ``path``; return the metadata part."""
    from onnx import TensorProto
    from sklearn.pipeline import Pipeline

    estimator = model.estimator
    kind = type(estimator).__name__
    if kind not in EXPORTABLE:
        raise ModelError(
            f"a {model.meta.get('model_type', kind)} {model.kind} cannot be exported to ONNX: "
            + ("it has no rule for new rows (a nearest-neighbour vote stands in)" if model.assigner is not None else "no converter"),
            allowed=EXPORTABLE_TYPES,
            got=model.meta.get("model_type", kind),
            fix="serve it with its native runtime (gravityml serve REF), or train an exportable type",
        )
    full = Pipeline([("preprocess", model.preprocess), ("estimator", estimator)])
    # PCA's confidence needs the preprocessed row itself, so only the preprocessor is converted.
    target = Pipeline([("preprocess", model.preprocess)]) if kind == "PCA" else full
    onx, inputs = convert_pipeline(target, schema=model.schema, options=EXPORTABLE[kind] or None)
    g = _Graph(onx)
    label_map: dict[str, Any] = {}
    if model.kind == "clusterer":
        if kind == "GaussianMixture":
            proba = _output(onx, "probabilities")
        else:
            d = _output(onx, "scores")
            sigma2 = max(float(model.meta["sigma2"]), 1e-12)
            logits = g.node("Mul", g.node("Mul", d, d), g.const(-1.0 / (2.0 * sigma2)))
            proba = g.node("Softmax", logits, axis=1, hint="probabilities")
        k = int(getattr(estimator, "n_components", 0) or getattr(estimator, "n_clusters", 0))
        best = g.node("ArgMax", proba, axis=1, keepdims=0, hint="label")
        outputs = {"label": (best, TensorProto.INT64, [None]), "probabilities": (proba, TensorProto.FLOAT, [None, k])}
        label_map = {str(i): i for i in range(k)}
    elif model.kind == "anomaly_detector":
        # score = -score_samples; OneClassSVM's converter gives decision_function = score_samples - offset_.
        if EXPORTABLE[kind].get("score_samples"):
            score = g.node("Neg", _output(onx, "score_samples"), hint="score")
        else:
            score = g.node("Neg", g.node("Add", _output(onx, "scores"), g.const(np.ravel(estimator.offset_)[:1])), hint="score")
        outputs = _anomaly_outputs(g, score, float(model.meta["threshold"]))
    else:
        outputs = _pca_outputs(g, estimator, _output(onx, onx.graph.output[0].name))
    roles = g.set_outputs(outputs)
    _write(onx, path)
    return {
        "inputs": inputs,
        "outputs": roles,
        "label_map": label_map,
        "preprocessing": {"in_graph": True, "steps": describe(full)},
        "opset": {o.domain: o.version for o in onx.opset_import},
    }


def _pca_outputs(g: _Graph, pca: Any, z: str) -> dict[str, tuple[str, int, list[Any]]]:
    """``components`` = (z - mean) C^T (whitened as PCA whitens); ``confidence`` = 1 - residual/total."""
    from onnx import TensorProto

    C = np.asarray(pca.components_, dtype=np.float64)
    k, width = C.shape
    centred = g.node("Sub", z, g.const(pca.mean_))
    projected = g.node("MatMul", centred, g.const(C.T))
    components = projected
    if pca.whiten:
        components = g.node("Div", projected, g.const(np.sqrt(pca.explained_variance_)))
    # reducer_frame subtracts comps @ components_ (comps whitened or not) from the centred row.
    back = g.node("MatMul", components, g.const(C))
    diff = g.node("Sub", centred, back)
    residual = g.rows_sum(g.node("Mul", diff, diff), width)
    total = g.node("Max", g.rows_sum(g.node("Mul", centred, centred), width), g.const([1e-12]))
    kept = g.node("Sub", g.const([1.0]), g.node("Div", residual, total))
    kept = g.node("Min", g.node("Max", kept, g.const([0.0])), g.const([1.0]), hint="confidence")
    return {"components": (components, TensorProto.FLOAT, [None, k]), "confidence": (kept, TensorProto.FLOAT, [None, 1])}


def export_autoencoder(model: Any, path: Path) -> dict[str, Any]:
    """Write an ``AutoencoderModel`` as ONNX: preprocessing, the network, the reconstruction error."""
    from sklearn.pipeline import Pipeline
    from torch import nn

    onx, inputs = convert_pipeline(Pipeline([("preprocess", model.preprocess)]), schema=model.schema)
    g = _Graph(onx)
    z = onx.graph.output[0].name
    x = z
    width = 0
    for layer in model.net:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().cpu().numpy()
            x = g.node("Gemm", x, g.const(weight), g.const(layer.bias.detach().cpu().numpy()), transB=1)
            width = width or weight.shape[1]
        elif isinstance(layer, nn.ReLU):
            x = g.node("Relu", x)
        else:  # pragma: no cover - build_autoencoder makes only these two
            raise ModelError(
                "the autoencoder holds a layer the exporter does not know",
                allowed=["Linear", "ReLU"],
                got=type(layer).__name__,
                fix="serve it with its native runtime (gravityml serve REF)",
            )
    diff = g.node("Sub", x, z)
    score = g.rows_sum(g.node("Mul", diff, diff), width, 1.0 / width)
    roles = g.set_outputs(_anomaly_outputs(g, score, float(model.meta["threshold"])))
    _write(onx, path)
    return {
        "inputs": inputs,
        "outputs": roles,
        "label_map": {},
        "preprocessing": {"in_graph": True, "steps": describe(Pipeline([("preprocess", model.preprocess), ("network", model.net)]))},
        "opset": {o.domain: o.version for o in onx.opset_import},
    }


def _write(onx: Any, path: Path) -> None:
    import onnx

    onnx.checker.check_model(onx)
    path.write_bytes(onx.SerializeToString())
