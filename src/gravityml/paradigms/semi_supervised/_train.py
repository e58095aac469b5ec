"""Semi-supervised training: learn from the labelled rows and the unlabelled ones (empty target),
then train the same model on the labelled rows alone, so the run shows what the unlabelled rows
bought (``semi_supervised/gain``: test accuracy with them minus without them), and a standard
supervised baseline (logistic regression) on the labelled rows, the gain over which is
``semi_supervised/gain_over_baseline``.

The test split is drawn from the labelled rows only (``data.split``); every unlabelled row is used
for training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gravityml.errors import TrainingError
from gravityml.paradigms import _plots
from gravityml.paradigms._base import TrainContext, TrainResult
from gravityml.paradigms._metrics import classification_metrics, prefixed
from gravityml.paradigms.semi_supervised._methods import method_for
from gravityml.schema import Schema

#: The standard supervised baseline every semi-supervised gain is also measured against.
BASELINE = "logistic regression (scikit-learn defaults, max_iter=1000, standardised features)"


def _baseline_proba(X_lab: pd.DataFrame, codes: np.ndarray, X_test: pd.DataFrame, schema: Schema, seed: int, n_classes: int) -> np.ndarray:
    """Test probabilities of :data:`BASELINE` fitted on the labelled training rows, one column per class."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from gravityml.paradigms.supervised import build_preprocessor

    pipeline = make_pipeline(build_preprocessor(schema, dense=False), LogisticRegression(max_iter=1000, random_state=seed))
    pipeline.fit(X_lab, codes)
    proba = np.zeros((len(X_test), n_classes))
    proba[:, pipeline.classes_] = pipeline.predict_proba(X_test)
    return proba


def train(ctx: TrainContext) -> TrainResult:
    dataset = ctx.dataset
    assert dataset is not None and dataset.target is not None
    if dataset.problem != "classification":
        raise TrainingError(
            f"data.target: semi-supervised learning here predicts classes, and {dataset.target!r} looks like {dataset.problem}",
            allowed=["classification"],
            got=dataset.problem,
            fix="set data.problem: classification if the target holds class labels",
        )
    labels_read = dataset.frame[dataset.target]
    if pd.api.types.is_float_dtype(labels_read) and bool(np.all(np.mod(labels_read.dropna(), 1) == 0)):
        # A CSV column of integer labels with empty cells reads as float; answer in the integers.
        dataset.frame = dataset.frame.assign(**{dataset.target: labels_read.astype("Int64")})
    schema = dataset.schema()
    classes = list(schema.classes or ())
    split = dataset.split()
    features, target = dataset.features, dataset.target
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([index[v.item() if hasattr(v, "item") else v] for v in split.train[target]], dtype="int64")
    if len(set(codes.tolist())) < 2:
        raise TrainingError(
            "data.target: the labelled training rows hold fewer than two classes",
            allowed="labelled rows of at least two classes",
            got=sorted({classes[c] for c in codes.tolist()}, key=str),
            fix="label more rows, or lower data.split.test so more labelled rows are trained on",
        )
    X_lab = schema.validate(split.train[features])
    X_unl = schema.validate(dataset.frame.loc[~dataset.labelled, features])
    X_test, y_test = schema.validate(split.test[features]), split.test[target]

    method = method_for(ctx, schema, classes)
    semi_model = method.semi(X_lab, codes, X_unl)
    alone_model = method.alone(X_lab, codes)

    labels = [str(c) for c in classes]
    truth = y_test.astype(str)
    proba = semi_model.predict_proba(X_test).to_numpy()
    semi_metrics = classification_metrics(truth, proba, labels)
    alone_metrics = classification_metrics(truth, alone_model.predict_proba(X_test).to_numpy(), labels)
    metrics: dict[str, float] = prefixed("test", semi_metrics)
    metrics.update(prefixed("labelled_only/test", alone_metrics))
    baseline_metrics = classification_metrics(truth, _baseline_proba(X_lab, codes, X_test, schema, ctx.spec.train.seed, len(classes)), labels)
    metrics.update(prefixed("baseline/test", baseline_metrics))
    metrics["semi_supervised/gain"] = semi_metrics["accuracy"] - alone_metrics["accuracy"]
    metrics["semi_supervised/gain_f1_macro"] = semi_metrics["f1_macro"] - alone_metrics["f1_macro"]
    # The gain over the same method on the labelled rows flatters a method that is weak with few
    # labels (label spreading); a plain logistic regression on those rows is the honest yardstick.
    metrics["semi_supervised/gain_over_baseline"] = semi_metrics["accuracy"] - baseline_metrics["accuracy"]
    metrics["semi_supervised/gain_over_baseline_f1_macro"] = semi_metrics["f1_macro"] - baseline_metrics["f1_macro"]
    metrics["data/labelled_rows"] = float(len(X_lab))
    metrics["data/unlabelled_rows"] = float(len(X_unl))
    metrics["data/test_rows"] = float(len(X_test))
    semi_model.meta["labelled_only_test_accuracy"] = alone_metrics["accuracy"]
    ctx.sink.log_metrics(metrics)

    title = f"{ctx.spec.name} ({ctx.spec.model.type}), test split"
    pred = np.asarray(labels, dtype=object)[np.argmax(proba, axis=1)]
    artifacts: list[Any] = [
        _plots.confusion_matrix_png(truth, pred, labels, ctx.workdir / "confusion_matrix.png", title),
        _plots.roc_curve_png(truth, proba, labels, ctx.workdir / "roc_curve.png", title),
        _plots.reliability_png(pred.astype(str) == truth.to_numpy(), proba.max(axis=1), ctx.workdir / "reliability.png", title),
    ]
    tags = {
        "problem": "classification",
        "semi_supervised.method": method.summary,
        "semi_supervised.gain": f"{metrics['semi_supervised/gain']:+.4f} test accuracy over the same method on the labelled rows alone",
        "semi_supervised.gain_over_baseline": f"{metrics['semi_supervised/gain_over_baseline']:+.4f} test accuracy over "
        f"{BASELINE} on the labelled rows",
    }
    return TrainResult(model=semi_model, metrics=metrics, artifacts=artifacts, params={"method": method.params}, tags=tags)
