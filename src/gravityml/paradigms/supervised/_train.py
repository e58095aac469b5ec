"""Supervised training: fit, evaluate on the held-out split, and make the model with its schema."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from gravityml.errors import TrainingError
from gravityml.models import SklearnModel
from gravityml.paradigms import _plots
from gravityml.paradigms._base import TrainContext, TrainResult, require_two_classes
from gravityml.paradigms._metrics import (
    classification_metrics,
    conformal_half_width,
    prefixed,
    regression_metrics,
)
from gravityml.paradigms.supervised._estimators import build_estimator, build_preprocessor, needs_dense
from gravityml.paradigms.supervised._own import build_own_estimator, confidence_method, label_codes, unscaled


def fit_pipeline(ctx: TrainContext, X: pd.DataFrame, y: pd.Series) -> Any:
    """Preprocessing + estimator fitted on ``X``/``y``; estimator errors become TrainingError."""
    from sklearn.pipeline import Pipeline

    spec = ctx.spec
    dataset = ctx.dataset
    assert dataset is not None and dataset.problem is not None
    schema = dataset.schema()
    target: Any = y
    if spec.model.entry_point:  # model.type sklearn: the user's own estimator
        estimator = build_own_estimator(spec, dataset.problem)
        if dataset.problem == "classification":
            target = label_codes(y, list(schema.classes or ()))
    else:
        estimator = build_estimator(spec.model.type, dataset.problem, dict(spec.model.params), spec.train.seed)
    preprocess = build_preprocessor(schema, dense=needs_dense(spec.model.type))
    if spec.model.entry_point and unscaled(estimator) and schema.columns_of("numeric") + schema.columns_of("boolean"):
        from sklearn.impute import SimpleImputer

        preprocess.set_params(numeric=Pipeline([("simpleimputer", SimpleImputer(strategy="median", keep_empty_features=True))]))
    pipeline = Pipeline([("preprocess", preprocess), ("model", estimator)])
    try:
        pipeline.fit(X, target)
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise TrainingError(
            f"model.params: {type(estimator).__name__} refused to fit: {first}",
            got=dict(spec.model.params),
            fix="correct model.params (see the estimator's scikit-learn documentation)",
        ) from None
    return pipeline


def evaluate_classifier(
    ctx: TrainContext, model: Any, X: pd.DataFrame, y: pd.Series, split: str, *, plots: bool
) -> tuple[dict[str, float], list[Any]]:
    proba = model.predict_proba(X)
    classes = list(model.classes)
    metrics = prefixed(split, classification_metrics(y, np.asarray(proba), classes))
    files = []
    if plots:
        pred = np.asarray(classes, dtype=object)[np.argmax(np.asarray(proba), axis=1)]
        title = f"{ctx.spec.name} ({ctx.spec.model.type}), {split} split"
        files.append(_plots.confusion_matrix_png(y, pred, classes, ctx.workdir / "confusion_matrix.png", title))
        files.append(_plots.roc_curve_png(y, np.asarray(proba), classes, ctx.workdir / "roc_curve.png", title))
    return metrics, files


def train(ctx: TrainContext) -> TrainResult:
    dataset = ctx.dataset
    assert dataset is not None and dataset.target is not None
    schema = dataset.schema()
    require_two_classes(dataset, schema)
    split = dataset.split()
    X_train = schema.validate(split.train[dataset.features])
    X_test = schema.validate(split.test[dataset.features])
    y_train, y_test = split.train[dataset.target], split.test[dataset.target]
    pipeline = fit_pipeline(ctx, X_train, y_train)

    meta: dict[str, Any] = {"task": "supervised", "model_type": ctx.spec.model.type, "problem": dataset.problem}
    artifacts = []
    if dataset.problem == "classification":
        kind = "classifier"
        # The estimator's class order is the order of its probability columns: keep that one
        # (an entry-point estimator learnt codes 0..k-1 in the schema's order).
        if ctx.spec.model.entry_point:
            meta["label_coded"] = True
            meta["confidence"] = confidence_method(pipeline.named_steps["model"])
        else:
            schema = replace(schema, classes=tuple(c.item() if hasattr(c, "item") else c for c in pipeline.classes_))
        model = SklearnModel(pipeline, kind=kind, schema=schema, meta=meta)
        metrics, artifacts = evaluate_classifier(ctx, model, X_test, y_test, "test", plots=True)
        train_metrics, _ = evaluate_classifier(ctx, model, X_train, y_train, "train", plots=False)
        metrics.update(train_metrics)
    else:
        kind = "regressor"
        test_pred = pipeline.predict(X_test)
        meta["interval_half_width"] = conformal_half_width(y_test, test_pred)
        meta["interval_coverage"] = 0.9
        model = SklearnModel(pipeline, kind=kind, schema=schema, meta=meta)
        metrics = prefixed("test", regression_metrics(y_test, test_pred))
        metrics.update(prefixed("train", regression_metrics(y_train, pipeline.predict(X_train))))
        title = f"{ctx.spec.name} ({ctx.spec.model.type}), test split"
        artifacts.append(_plots.predicted_vs_actual_png(y_test, test_pred, ctx.workdir / "predicted_vs_actual.png", title))
    metrics["data/train_rows"] = float(len(split.train))
    metrics["data/test_rows"] = float(len(split.test))
    params = {k: v for k, v in pipeline.named_steps["model"].get_params(deep=False).items() if _simple(v)}
    ctx.sink.log_metrics(metrics)
    return TrainResult(model=model, metrics=metrics, artifacts=artifacts, params={"estimator": params}, tags={"problem": str(dataset.problem)})


def _simple(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
