"""Unsupervised training over scikit-learn: fit on the training split, evaluate on both splits.

A label column, when the spec names one, never reaches the estimator: it is used only to score
the result (ARI/NMI for clusters, ROC AUC and friends for anomalies).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gravityml.models import GravityModel
from gravityml.models._unsupervised import UnsupervisedModel
from gravityml.paradigms._base import TrainContext, TrainResult
from gravityml.paradigms._metrics import prefixed
from gravityml.paradigms.unsupervised import _evaluate as ev
from gravityml.paradigms.unsupervised._estimators import (
    CLUSTER_COUNT,
    build_estimator,
    build_preprocessor,
    fit_checked,
    role_of,
    split_params,
)
from gravityml.schema import Schema

#: The threshold's share when the spec gives neither contamination nor target_fpr.
DEFAULT_FLAG_RATE = 0.05


@dataclass
class Prepared:
    """The training and test rows, their label (if any, for evaluation only) and the schema."""

    schema: Schema
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    truth_train: pd.Series | None
    truth_test: pd.Series | None
    own: dict[str, Any]
    params: dict[str, Any]


def prepare(ctx: TrainContext) -> Prepared:
    dataset = ctx.dataset
    assert dataset is not None
    schema = Schema.from_frame(dataset.frame[dataset.features], text_columns=dataset.text_columns)
    split = dataset.split(pd.Series(True, index=dataset.frame.index))
    own, params = split_params(ctx.spec.model.type, dict(ctx.spec.model.params), len(split.train))
    target = dataset.target
    return Prepared(
        schema=schema,
        X_train=schema.validate(split.train[dataset.features]),
        X_test=schema.validate(split.test[dataset.features]),
        truth_train=split.train[target] if target else None,
        truth_test=split.test[target] if target else None,
        own=own,
        params=params,
    )


def threshold_for(train_scores: np.ndarray, own: dict[str, Any]) -> tuple[float, str]:
    """The score above which a row is flagged, and how it was chosen.

    contamination: that share of the training rows is flagged. target_fpr: the same quantile, read
    as "this share of normal rows may be flagged", which holds when training rows are mostly normal.
    """
    if own.get("contamination") is not None:
        rate, rule = float(own["contamination"]), f"contamination={own['contamination']}"
    elif own.get("target_fpr") is not None:
        rate, rule = float(own["target_fpr"]), f"target_fpr={own['target_fpr']}"
    else:
        rate, rule = DEFAULT_FLAG_RATE, f"target_fpr={DEFAULT_FLAG_RATE} (default)"
    return float(np.quantile(train_scores, 1.0 - rate)), rule


def anomaly_metrics(ctx: TrainContext, prep: Prepared, model: GravityModel) -> tuple[dict[str, float], list[Any]]:
    """Flag shares on both splits; against the label column (if any) ROC AUC, AP, precision@k."""
    metrics: dict[str, float] = {"model/threshold": float(model.meta["threshold"])}
    artifacts = []
    positive = ev.anomaly_positive(pd.concat([prep.truth_train, prep.truth_test])) if prep.truth_test is not None else None
    for split, X, truth in (("train", prep.X_train, prep.truth_train), ("test", prep.X_test, prep.truth_test)):
        out = model.predict(X)
        score, flagged = out["score"].to_numpy(), out["is_anomaly"].to_numpy()
        if truth is not None:
            metrics.update(prefixed(split, ev.anomaly_quality(truth, score, flagged, positive)))
        else:
            metrics[f"{split}/flagged_share"] = float(flagged.mean())
        if split == "test":
            title = f"{ctx.spec.name} ({ctx.spec.model.type}), test split"
            artifacts.append(ev.score_histogram_png(score, model.meta["threshold"], ctx.workdir / "anomaly_scores.png", title))
    return metrics, artifacts


def train(ctx: TrainContext) -> TrainResult:
    prep = prepare(ctx)
    model_type = ctx.spec.model.type
    role = role_of(model_type)
    seed = ctx.spec.train.seed
    preprocess = build_preprocessor(prep.schema, scale=prep.own["scale"]).fit(prep.X_train)
    Z_train = np.asarray(preprocess.transform(prep.X_train), dtype="float64")
    params = dict(prep.params)
    count_param = CLUSTER_COUNT.get(model_type)
    auto = count_param is not None and params.get(count_param) == "auto"
    if auto:
        params.pop(count_param)
    estimator = build_estimator(model_type, params, prep.own, seed)
    meta: dict[str, Any] = {"task": "unsupervised", "model_type": model_type, "scale": prep.own["scale"]}
    metrics: dict[str, float] = {}
    artifacts: list[Any] = []
    tags: dict[str, str] = {"role": role}
    title = f"{ctx.spec.name} ({model_type})"

    if auto:
        from sklearn.base import clone

        low, high = (int(v) for v in prep.own["n_clusters_range"])

        def labels_for(k: int) -> np.ndarray:
            return np.asarray(clone(estimator).set_params(**{count_param: k}).fit_predict(Z_train))

        chosen, curve = ev.search_cluster_count(labels_for, Z_train, low, high, seed)
        estimator.set_params(**{count_param: chosen})
        # The curve goes to a file, not a metric history: a run's "latest" value of a per-k metric
        # would be the last k tried, which reads as the chosen one.
        curve_file = ctx.workdir / "cluster_count.json"
        curve_file.write_text(json.dumps({"metric": "silhouette", "chosen": chosen, "curve": curve}, indent=2))
        artifacts.append(curve_file)
        metrics["search/chosen_n_clusters"] = float(chosen)
        metrics["search/best_silhouette"] = curve[chosen]
        tags["n_clusters"] = f"auto: {chosen} of {sorted(curve)} by silhouette"
        artifacts.append(ev.cluster_count_png(curve, chosen, ctx.workdir / "cluster_count.png", f"{title}: cluster count"))

    if role == "anomaly_detector":
        fit_checked(estimator, Z_train)
        train_scores = (
            -estimator.negative_outlier_factor_ if model_type == "local_outlier_factor" else -estimator.score_samples(Z_train)
        )
        meta["threshold"], rule = threshold_for(train_scores, prep.own)
        meta["threshold_rule"] = rule
        tags["threshold"] = rule
        model: GravityModel = UnsupervisedModel(preprocess, estimator, kind="anomaly_detector", schema=prep.schema, meta=meta)
        more, files = anomaly_metrics(ctx, prep, model)
        metrics.update(more)
        artifacts += files
    elif role == "reducer":
        fit_checked(estimator, Z_train)
        model = UnsupervisedModel(preprocess, estimator, kind="reducer", schema=prep.schema, meta=meta)
        ratios = estimator.explained_variance_ratio_
        metrics["train/explained_variance"] = float(ratios.sum())
        metrics.update({f"train/explained_variance_{i + 1}": float(r) for i, r in enumerate(ratios[:10])})
        kept = model.predict(prep.X_test)["confidence"]
        metrics["test/explained_variance_per_row"] = float(kept.mean())
        colour = prep.truth_train.to_numpy() if prep.truth_train is not None else None
        artifacts.append(ev.projection_png(Z_train, colour, ctx.workdir / "projection.png", f"{title}: 2-D projection", "label"))
    else:
        model, train_labels = _fit_clusterer(estimator, Z_train, preprocess, prep, meta, model_type)
        metrics.update(_cluster_metrics(model, prep, Z_train, train_labels, seed))
        artifacts.append(
            ev.projection_png(Z_train, train_labels, ctx.workdir / "projection.png", f"{title}: clusters, training rows", "cluster")
        )
    metrics["data/train_rows"] = float(len(prep.X_train))
    metrics["data/test_rows"] = float(len(prep.X_test))
    ctx.sink.log_metrics(metrics)
    resolved = {k: v for k, v in estimator.get_params(deep=False).items() if v is None or isinstance(v, (bool, int, float, str))}
    return TrainResult(model=model, metrics=metrics, artifacts=artifacts, params={"estimator": resolved, **prep.own}, tags=tags)


def _fit_clusterer(
    estimator: Any, Z: np.ndarray, preprocess: Any, prep: Prepared, meta: dict[str, Any], model_type: str
) -> tuple[UnsupervisedModel, np.ndarray]:
    assigner = None
    if hasattr(estimator, "predict"):
        fit_checked(estimator, Z)
        labels = np.asarray(estimator.predict(Z))
        if hasattr(estimator, "cluster_centers_"):
            meta["sigma2"] = float(estimator.inertia_) / (len(Z) * Z.shape[1])
    else:
        from sklearn.neighbors import KNeighborsClassifier

        labels = np.asarray(fit_checked(estimator, Z, method="fit_predict"))
        # These clusterers have no rule for new rows: the nearest training rows vote instead.
        assigner = KNeighborsClassifier(n_neighbors=min(5, len(Z))).fit(Z, labels)
        meta["assignment"] = "vote of the 5 nearest training rows"
    meta["n_clusters"] = int(len(set(labels.tolist()) - {-1}))
    model = UnsupervisedModel(preprocess, estimator, kind="clusterer", schema=prep.schema, assigner=assigner, meta=meta)
    return model, labels


def _cluster_metrics(model: UnsupervisedModel, prep: Prepared, Z_train: np.ndarray, train_labels: np.ndarray, seed: int) -> dict[str, float]:
    metrics = prefixed("train", ev.cluster_quality(Z_train, train_labels, seed))
    test_out = model.predict(prep.X_test)
    test_labels = test_out["prediction"].to_numpy()
    metrics.update(prefixed("test", ev.cluster_quality(model.embed(prep.X_test), test_labels, seed)))
    metrics["test/mean_confidence"] = float(test_out["confidence"].mean())
    if prep.truth_train is not None and prep.truth_test is not None:
        metrics.update(prefixed("train", ev.cluster_agreement(prep.truth_train, train_labels)))
        metrics.update(prefixed("test", ev.cluster_agreement(prep.truth_test, test_labels)))
    return metrics
