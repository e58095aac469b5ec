"""Supervised training: fit, evaluate on the held-out split, and make the model with its schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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

#: Share of the training rows kept aside to calibrate on when the spec gives no validation split.
AUTO_VALIDATION = 0.1


def cluster_joblib(spec: Any) -> str | None:
    """How a scikit-learn model's ``n_jobs`` runs when the job runs on a Ray cluster: through joblib's
    Ray backend, over the cluster's CPUs (None: on this process's machine, as joblib does by itself)."""
    import os

    n_jobs = spec.model.params.get("n_jobs")
    if n_jobs in (None, 1) or not os.environ.get("RAY_ADDRESS"):  # a Ray job's driver has RAY_ADDRESS set
        return None
    return f"joblib's Ray backend (n_jobs {n_jobs}: the cluster's CPUs, not one node's)"


@contextmanager
def _joblib_backend(spec: Any) -> Iterator[None]:
    if cluster_joblib(spec) is None:
        yield
        return
    import joblib
    from ray.util.joblib import register_ray

    register_ray()
    with joblib.parallel_backend("ray"):
        yield


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
        with _joblib_backend(spec):
            pipeline.fit(X, target)
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise TrainingError(
            f"model.params: {type(estimator).__name__} refused to fit: {first}",
            allowed=f"the parameters {type(estimator).__name__} accepts (`gravityml validate JOB.yaml` lists them)",
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
        correct = np.asarray(pred).astype(str) == np.asarray(y).astype(str)
        files.append(_plots.reliability_png(correct, np.asarray(proba).max(axis=1), ctx.workdir / "reliability.png", title))
    return metrics, files


def calibration_rows(ctx: TrainContext, split: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to fit on, validation rows to calibrate on): ``data.split.validation`` when the spec
    sets one, else :data:`AUTO_VALIDATION` of the training rows (stratified, seeded)."""
    from gravityml.data._dataset import _split

    if split.validation is not None:
        return split.train, split.validation
    dataset = ctx.dataset
    assert dataset is not None
    seed = ctx.spec.data.split.seed + 1 if ctx.spec.data else 8
    return _split(split.train, AUTO_VALIDATION, seed, dataset.target)


def calibrate_pipeline(pipeline: Any, method: str, X_val: pd.DataFrame, y_val: pd.Series) -> Any:
    """The fitted pipeline with its estimator's probabilities mapped by ``method`` (sigmoid: Platt
    1999; isotonic: Zadrozny & Elkan 2002), fitted on the validation rows only.

    scikit-learn's ``CalibratedClassifierCV`` over the frozen estimator; the frozen wrapper is
    taken off once fitted, so the pipeline keeps (preprocess, model) and exports to ONNX.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    preprocess, estimator = pipeline.named_steps["preprocess"], pipeline.steps[-1][1]
    # A frozen estimator is never refitted (ensemble is off), so the folds only split the rows for
    # scikit-learn's per-fold class check: as many as the rarest class allows, at most 5.
    folds = int(min(5, max(2, pd.Series(np.asarray(y_val)).value_counts().min())))
    calibrated = CalibratedClassifierCV(FrozenEstimator(estimator), method=method, cv=folds)
    try:
        calibrated.fit(preprocess.transform(X_val), y_val)
    except ValueError as exc:
        raise TrainingError(
            f"train.calibrate: {method} calibration could not be fitted: {str(exc).strip().splitlines()[0]}",
            allowed="validation rows of every class",
            got=f"{len(X_val)} validation rows",
            fix="give more rows, or set data.split.validation: 0.2",
        ) from None
    for member in calibrated.calibrated_classifiers_:
        member.estimator = member.estimator.estimator
    calibrated.estimator = estimator
    return Pipeline([("preprocess", preprocess), ("model", calibrated)])


def check_calibrate(ctx: TrainContext, allowed: tuple[str, ...]) -> str:
    """``train.calibrate`` when this model can use it, else a TrainingError naming what it can."""
    method = ctx.spec.train.calibrate
    dataset = ctx.dataset
    assert dataset is not None
    if method == "none":
        return method
    if dataset.problem != "classification":
        raise TrainingError(
            "train.calibrate: calibration maps class probabilities, and this job is a regression",
            allowed=["none"],
            got=method,
            fix="remove train.calibrate (regressors report a conformal interval instead)",
        )
    if method not in allowed:
        raise TrainingError(
            f"train.calibrate: {ctx.spec.model.type} cannot use {method} calibration",
            allowed=list(allowed) or ["none"],
            got=method,
            fix=f"use train.calibrate: {allowed[0]}" if allowed else "remove train.calibrate",
        )
    return method


def train(ctx: TrainContext) -> TrainResult:
    dataset = ctx.dataset
    assert dataset is not None and dataset.target is not None
    schema = dataset.schema()
    require_two_classes(dataset, schema)
    split = dataset.split()
    X_train = schema.validate(split.train[dataset.features])
    X_test = schema.validate(split.test[dataset.features])
    y_train, y_test = split.train[dataset.target], split.test[dataset.target]
    calibrate = check_calibrate(ctx, ("sigmoid", "isotonic"))
    if calibrate != "none":
        fit_rows, val_rows = calibration_rows(ctx, split)
        X_train, y_train = schema.validate(fit_rows[dataset.features]), fit_rows[dataset.target]
        X_val, y_val = schema.validate(val_rows[dataset.features]), val_rows[dataset.target]
    pipeline = fit_pipeline(ctx, X_train, y_train)
    uncalibrated = pipeline
    if calibrate != "none":
        # Your own estimator learnt codes 0..k-1 (label_codes): it is calibrated on codes too.
        coded = label_codes(y_val, list(schema.classes or ())) if ctx.spec.model.entry_point else y_val
        pipeline = calibrate_pipeline(pipeline, calibrate, X_val, coded)

    meta: dict[str, Any] = {"task": "supervised", "model_type": ctx.spec.model.type, "problem": dataset.problem}
    if calibrate != "none":
        meta["calibration"] = {"method": calibrate, "rows": len(X_val)}
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
        if calibrate != "none":
            before = SklearnModel(uncalibrated, kind=kind, schema=schema, meta=meta)
            metrics["test/ece_uncalibrated"] = evaluate_classifier(ctx, before, X_test, y_test, "test", plots=False)[0]["test/ece"]
            metrics["data/calibration_rows"] = float(len(X_val))
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
    metrics["data/train_rows"] = float(len(X_train))
    metrics["data/test_rows"] = float(len(split.test))
    params = {k: v for k, v in uncalibrated.named_steps["model"].get_params(deep=False).items() if _simple(v)}
    ctx.sink.log_metrics(metrics)
    tags = {"problem": str(dataset.problem)}
    joblib_note = cluster_joblib(ctx.spec)
    if joblib_note is not None:
        tags["joblib_backend"] = joblib_note
    if calibrate != "none":
        tags["calibration"] = (
            f"{calibrate} on {len(X_val)} validation rows: test ECE {metrics['test/ece_uncalibrated']:.4f} -> {metrics['test/ece']:.4f}"
        )
    return TrainResult(model=model, metrics=metrics, artifacts=artifacts, params={"estimator": params}, tags=tags)


def _simple(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
