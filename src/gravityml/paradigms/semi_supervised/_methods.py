"""Each semi-supervised model type as a pair of fitters: one that uses the unlabelled rows and the
same model on the labelled rows alone (the baseline every run reports its gain against).

* ``label_spreading`` / ``label_propagation``: scikit-learn's graph methods (Zhou et al. 2004;
  Zhu & Ghahramani 2002), kNN graph by default (an RBF graph on standardised features with the
  default gamma connects almost nothing).
* ``self_training`` (``params.base``: any supervised scikit-learn classifier of the catalog), and
  every such classifier named directly with ``task: semi_supervised``: scikit-learn's
  SelfTrainingClassifier (Yarowsky 1995), which adds confident predictions round by round.
* ``pseudo_label``: the generic loop in :mod:`._pseudo` around the torch ``mlp`` (default) or any
  supervised scikit-learn classifier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from gravityml._typing import Metrics, MetricSink, Params, PathLikeStr
from gravityml.errors import TrainingError
from gravityml.models import GravityModel, SklearnModel
from gravityml.models._unsupervised import DecodedClassifier
from gravityml.paradigms._base import TrainContext
from gravityml.paradigms.semi_supervised._pseudo import pseudo_label
from gravityml.paradigms.supervised import SKLEARN_SUPERVISED, build_estimator
from gravityml.paradigms.unsupervised._estimators import build_preprocessor, fit_checked
from gravityml.schema import Schema
from gravityml.spec import did_you_mean

Fit = Callable[[pd.DataFrame, np.ndarray], GravityModel]
SemiFit = Callable[[pd.DataFrame, np.ndarray, pd.DataFrame], GravityModel]

GRAPH_DEFAULTS: dict[str, Any] = {"kernel": "knn", "n_neighbors": 7, "max_iter": 1000}
SELF_TRAINING_KEYS = {"base", "base_params", "threshold", "max_rounds", "scale"}
PSEUDO_LABEL_KEYS = {"base", "base_params", "threshold", "rounds", "scale"}
TORCH_BASES = ("mlp",)


@dataclass
class Method:
    """How a model type learns with and without the unlabelled rows."""

    semi: SemiFit
    alone: Fit
    summary: str
    params: dict[str, Any]


def _check_keys(model_type: str, params: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise TrainingError(
            f"model.params: {unknown[0]!r} is not a setting of {model_type}{did_you_mean(unknown[0], sorted(allowed))}",
            allowed=sorted(allowed),
            got=unknown[0],
            fix="use one of the allowed names; the wrapped model's own params go in base_params",
        )


def _share(params: Mapping[str, Any], key: str, default: float) -> float:
    value = params.get(key, default)
    if not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise TrainingError(f"model.params.{key}: must be a probability between 0 and 1", allowed="0 < x < 1", got=value, fix=f"write {key}: {default}")
    return float(value)


def _count(params: Mapping[str, Any], key: str, default: int) -> int:
    value = params.get(key, default)
    if not isinstance(value, int) or value < 1:
        raise TrainingError(f"model.params.{key}: must be a whole number of rounds >= 1", got=value, fix=f"write {key}: {default}")
    return value


class Builder:
    """Makes fitted models for one job: the schema, class order and seed are fixed here."""

    def __init__(self, ctx: TrainContext, schema: Schema, classes: list[Any], scale: str) -> None:
        self.ctx, self.schema, self.classes, self.scale = ctx, schema, classes, scale
        self.seed = ctx.spec.train.seed

    def wrap(self, preprocess: Any, estimator: Any, meta: dict[str, Any]) -> GravityModel:
        from sklearn.pipeline import Pipeline

        pipeline = Pipeline([("preprocess", preprocess), ("model", DecodedClassifier(estimator, self.classes))])
        return SklearnModel(pipeline, kind="classifier", schema=self.schema, meta=meta)

    def sklearn_fit(self, make: Callable[[], Any], meta: dict[str, Any]) -> Fit:
        """``fit(X, codes)`` for a scikit-learn classifier made by ``make``."""

        def fit(X: pd.DataFrame, codes: np.ndarray) -> GravityModel:
            preprocess = build_preprocessor(self.schema, scale=self.scale).fit(X)
            estimator = make()
            Z = np.asarray(preprocess.transform(X), dtype="float64")
            if estimator.get_params().get("kernel") == "knn":
                estimator.set_params(n_neighbors=max(1, min(estimator.n_neighbors, len(Z) - 1)))
            fit_checked(estimator, Z, codes)
            return self.wrap(preprocess, estimator, meta)

        return fit

    def sklearn_semi(self, make: Callable[[], Any], meta: dict[str, Any]) -> SemiFit:
        """``fit(X_labelled, codes, X_unlabelled)`` for an estimator that takes -1 as "no label"."""

        def fit(X_lab: pd.DataFrame, codes: np.ndarray, X_unl: pd.DataFrame) -> GravityModel:
            X = pd.concat([X_lab, X_unl])
            preprocess = build_preprocessor(self.schema, scale=self.scale).fit(X)
            estimator = make()
            y = np.concatenate([codes, np.full(len(X_unl), -1)])
            fit_checked(estimator, np.asarray(preprocess.transform(X), dtype="float64"), y)
            return self.wrap(preprocess, estimator, meta)

        return fit

    def classifier(self, base: str, base_params: dict[str, Any]) -> Callable[[], Any]:
        if base not in SKLEARN_SUPERVISED:
            raise TrainingError(
                f"model.params.base: {base!r} is not a supervised classifier{did_you_mean(base, sorted(SKLEARN_SUPERVISED))}",
                allowed=sorted(SKLEARN_SUPERVISED),
                got=base,
                fix="name a supervised model type of the catalog",
            )
        build_estimator(base, "classification", dict(base_params), self.seed)  # checks the params now
        return lambda: build_estimator(base, "classification", dict(base_params), self.seed)

    def torch_fit(self, base_params: dict[str, Any], meta: dict[str, Any]) -> Fit:
        """``fit(X, codes)`` for the torch ``mlp`` through the deep-learning paradigm's loop."""
        from gravityml.models._nets import DEFAULTS

        unknown = [k for k in base_params if k not in DEFAULTS["mlp"]]
        if unknown:
            raise TrainingError(
                f"model.params.base_params: {unknown[0]!r} is not a parameter of the mlp network",
                allowed=sorted(DEFAULTS["mlp"]),
                got=unknown[0],
                fix="use the mlp's own parameter names",
            )
        params = {**DEFAULTS["mlp"], **base_params}
        calls = [0]

        def fit(X: pd.DataFrame, codes: np.ndarray) -> GravityModel:
            import torch

            from gravityml.models._nets import build_network
            from gravityml.models._torch import TorchEncoder, TorchModel
            from gravityml.paradigms.deep import fit_torch, seed_everything

            encoder = TorchEncoder.fit("mlp", self.schema, X, params)
            inputs = encoder.transform(X).astype("float32")
            config = {"arch": "mlp", "params": params, "n_inputs": encoder.width, "n_outputs": len(self.classes)}
            seed_everything(self.seed)
            network = build_network(config)
            with torch.no_grad():
                fill = np.nan_to_num(np.nanmedian(inputs, axis=0))
                filled = np.where(np.isnan(inputs), fill, inputs)
                std = filled.std(axis=0)
                network.standardize.fill.copy_(torch.from_numpy(fill).float())
                network.standardize.mean.copy_(torch.from_numpy(filled.mean(axis=0)).float())
                network.standardize.std.copy_(torch.from_numpy(np.where(std > 1e-8, std, 1.0)).float())
            calls[0] += 1
            sub = replace(self.ctx, sink=PrefixSink(self.ctx.sink, f"fit{calls[0]}/"))
            result = fit_torch(sub, network, inputs, codes.astype("int64"), checkpoint=False)
            model_meta = {**meta, "network": config, "precision": result.precision, "problem": "classification"}
            return TorchModel(result.network.cpu(), encoder, kind="classifier", schema=self.schema, meta=model_meta)

        return fit


class PrefixSink:
    """Puts a prefix before every metric key (each pseudo-labelling fit gets its own curves)."""

    def __init__(self, sink: MetricSink, prefix: str) -> None:
        self.sink, self.prefix = sink, prefix

    def log_metrics(self, metrics: Metrics, step: int | None = None) -> None:
        self.sink.log_metrics({self.prefix + k: v for k, v in metrics.items()}, step)

    def log_params(self, params: Params) -> None:
        self.sink.log_params(params)

    def log_artifact(self, path: PathLikeStr, artifact_path: str | None = None) -> None:
        self.sink.log_artifact(path, artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.sink.set_tags(tags)


def method_for(ctx: TrainContext, schema: Schema, classes: list[Any]) -> Method:
    model_type = ctx.spec.model.type
    params = dict(ctx.spec.model.params)
    scale = params.get("scale", "standard")
    if scale not in ("standard", "none"):
        raise TrainingError("model.params.scale: unknown scaling", allowed=["standard", "none"], got=scale, fix="use standard or none")
    builder = Builder(ctx, schema, classes, scale)
    meta = {"task": "semi_supervised", "model_type": model_type, "problem": "classification"}

    if model_type in ("label_spreading", "label_propagation"):
        from sklearn import semi_supervised

        cls = semi_supervised.LabelSpreading if model_type == "label_spreading" else semi_supervised.LabelPropagation
        given = {k: v for k, v in params.items() if k != "scale"}
        valid = sorted(cls().get_params())
        _check_keys(model_type, given, set(valid) | {"scale"})
        resolved = {**GRAPH_DEFAULTS, **given}

        def make() -> Any:
            return cls(**resolved)

        return Method(builder.sklearn_semi(make, meta), builder.sklearn_fit(make, meta), f"{model_type} ({resolved['kernel']} graph)", resolved)

    if model_type == "pseudo_label":
        _check_keys(model_type, params, PSEUDO_LABEL_KEYS)
        base = params.get("base", "mlp")
        base_params = dict(params.get("base_params") or {})
        threshold, rounds = _share(params, "threshold", 0.9), _count(params, "rounds", 3)
        fit = builder.torch_fit(base_params, meta) if base in TORCH_BASES else builder.sklearn_fit(builder.classifier(base, base_params), meta)

        def semi(X_lab: pd.DataFrame, codes: np.ndarray, X_unl: pd.DataFrame) -> GravityModel:
            result = pseudo_label(fit, X_lab, codes, X_unl, threshold=threshold, rounds=rounds, sink=ctx.sink, should_stop=ctx.should_stop)
            result.model.meta["pseudo_label"] = {"rounds_run": result.rounds_run, "stopped": result.stopped}
            return result.model  # type: ignore[no-any-return]

        resolved = {"base": base, "base_params": base_params, "threshold": threshold, "rounds": rounds}
        return Method(semi, fit, f"pseudo-labelling around {base}", resolved)

    # self_training, or a supervised classifier named directly: self-training around it.
    if model_type == "self_training":
        _check_keys(model_type, params, SELF_TRAINING_KEYS)
        base = params.get("base", "logistic_regression")
        base_params = dict(params.get("base_params") or {})
    else:
        base = model_type
        base_params = {k: v for k, v in params.items() if k not in SELF_TRAINING_KEYS}
    if base in TORCH_BASES:
        raise TrainingError(
            "model.params.base: self-training wraps scikit-learn classifiers",
            allowed=sorted(SKLEARN_SUPERVISED),
            got=base,
            fix="for the torch mlp use model.type: pseudo_label with base: mlp",
        )
    make_base = builder.classifier(base, base_params)
    threshold, max_rounds = _share(params, "threshold", 0.75), _count(params, "max_rounds", 10)

    def make_self_training() -> Any:
        from sklearn.semi_supervised import SelfTrainingClassifier

        return SelfTrainingClassifier(make_base(), threshold=threshold, max_iter=max_rounds)

    resolved = {"base": base, "base_params": base_params, "threshold": threshold, "max_rounds": max_rounds}
    return Method(builder.sklearn_semi(make_self_training, meta), builder.sklearn_fit(make_base, meta), f"self-training around {base}", resolved)
