"""Train a ``pyspark.ml`` Pipeline on a Spark DataFrame; the metrics are computed on the cluster.

The pipeline preprocesses the way the platform's own does: text (string) columns are indexed
(``StringIndexer``, unseen values kept as their own index) and one-hot encoded, numeric columns are
assembled as they are (``VectorAssembler``, missing values kept as NaN), and a classification target
is indexed in sorted label order. The split is seeded and stratified by class: within each class the
rows are ranked by a seeded random number and the first ``test_fraction`` of each class is the test
split. No row is collected to the driver; only the evaluators' numbers come back.
"""

from __future__ import annotations

from typing import Any

from gravityml.errors import TrainingError
from gravityml.models._spark import SparkModel
from gravityml.schema import Column, Schema

#: Columns the pipeline adds (named so that a table's own "label" or "features" does not collide).
LABEL, FEATURES = "__gml_label", "__gml_features"

#: model type -> (pyspark.ml class for classification, for regression, for clustering).
SPARK_ESTIMATORS: dict[str, dict[str, str]] = {
    "spark_logistic_regression": {"classification": "pyspark.ml.classification:LogisticRegression"},
    "spark_random_forest": {"classification": "pyspark.ml.classification:RandomForestClassifier",
                            "regression": "pyspark.ml.regression:RandomForestRegressor"},
    "spark_gbt": {"classification": "pyspark.ml.classification:GBTClassifier",
                  "regression": "pyspark.ml.regression:GBTRegressor"},
    "spark_linear_regression": {"regression": "pyspark.ml.regression:LinearRegression"},
    "spark_kmeans": {"clustering": "pyspark.ml.clustering:KMeans"},
    "spark_gaussian_mixture": {"clustering": "pyspark.ml.clustering:GaussianMixture"},
}


def _estimator(model_type: str, problem: str, params: dict[str, Any], seed: int) -> Any:
    import importlib

    roles = SPARK_ESTIMATORS.get(model_type)
    if roles is None or problem not in roles:
        raise TrainingError(
            f"model.type: {model_type} does not do {problem}",
            allowed=sorted(f"{t}/{p}" for t, r in SPARK_ESTIMATORS.items() for p in r),
            got=f"{model_type}/{problem}",
            fix="choose a Spark model type for this problem",
        )
    module, name = roles[problem].split(":")
    cls = getattr(importlib.import_module(module), name)
    kwargs: dict[str, Any] = {"featuresCol": FEATURES}
    if problem != "clustering":
        kwargs["labelCol"] = LABEL
    if any(p.name == "seed" for p in cls().params):
        kwargs["seed"] = seed
    try:
        return cls(**kwargs, **params)
    except TypeError as exc:
        raise TrainingError(
            f"model.params: {name} refused them: {exc}",
            allowed=sorted(p.name for p in cls().params),
            got=params,
            fix="give parameters of the pyspark.ml estimator (camelCase, e.g. maxIter)",
        ) from None


def build_pipeline(frame: Any, features: list[str], target: str | None, problem: str, estimator: Any) -> Any:
    """Indexing, encoding and assembling, then ``estimator``: an unfitted ``pyspark.ml.Pipeline``."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    types = dict(frame.dtypes)
    text = [c for c in features if types[c] == "string"]
    stages: list[Any] = []
    if text:
        stages.append(StringIndexer(inputCols=text, outputCols=[f"{c}__idx" for c in text], handleInvalid="keep"))
        stages.append(OneHotEncoder(inputCols=[f"{c}__idx" for c in text], outputCols=[f"{c}__ohe" for c in text],
                                    handleInvalid="keep"))
    inputs = [f"{c}__ohe" if c in text else c for c in features]
    stages.append(VectorAssembler(inputCols=inputs, outputCol=FEATURES, handleInvalid="keep"))
    if problem == "classification":
        stages.insert(0, StringIndexer(inputCol=target, outputCol=LABEL, stringOrderType="alphabetAsc"))
    elif problem == "regression":
        from pyspark.ml.feature import SQLTransformer

        stages.insert(0, SQLTransformer(statement=f"SELECT *, CAST(`{target}` AS DOUBLE) AS {LABEL} FROM __THIS__"))
    stages.append(estimator)
    return Pipeline(stages=stages)


def stratified_split(frame: Any, target: str | None, test_fraction: float, seed: int) -> tuple[Any, Any]:
    """(train, test): per class, the first ``test_fraction`` of rows ranked by a seeded random number."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ranked = frame.withColumn("__r", F.rand(seed))
    if target is not None:
        window = Window.partitionBy(target).orderBy("__r")
        ranked = ranked.withColumn("__r", F.percent_rank().over(window))
    test = ranked.filter(F.col("__r") < test_fraction).drop("__r")
    train = ranked.filter(F.col("__r") >= test_fraction).drop("__r")
    return train, test


def _metrics(scored: Any, problem: str, split: str, n_classes: int) -> dict[str, float]:
    from pyspark.ml.evaluation import (
        BinaryClassificationEvaluator,
        ClusteringEvaluator,
        MulticlassClassificationEvaluator,
        RegressionEvaluator,
    )

    out: dict[str, float] = {}
    if problem == "classification":
        for name in ("accuracy", "f1"):
            out[name] = MulticlassClassificationEvaluator(metricName=name, labelCol=LABEL).evaluate(scored)
        if n_classes == 2:
            out["roc_auc"] = BinaryClassificationEvaluator(rawPredictionCol="probability", labelCol=LABEL).evaluate(scored)
    elif problem == "regression":
        for name in ("rmse", "mae", "r2"):
            out[name] = RegressionEvaluator(metricName=name, labelCol=LABEL).evaluate(scored)  # type: ignore[arg-type]
    else:
        out["silhouette"] = ClusteringEvaluator(featuresCol=FEATURES).evaluate(scored)
    return {f"{split}/{k}": float(v) for k, v in out.items()}


def _schema(frame: Any, fitted: Any, features: list[str], target: str | None, problem: str,
            labels: list[str] | None) -> Schema:
    types = dict(frame.dtypes)
    categories: dict[str, tuple[str, ...]] = {}
    for stage in fitted.stages:  # the feature StringIndexerModel: its labels are each column's categories
        if hasattr(stage, "labelsArray") and stage.hasParam("inputCols") and stage.isSet("inputCols"):
            categories.update(zip(stage.getInputCols(), (tuple(a) for a in stage.labelsArray)))
    cols = tuple(
        Column(c, "categorical" if types[c] == "string" else "boolean" if types[c] == "boolean" else "numeric",
               "object" if types[c] == "string" else "float64" if types[c] in ("double", "float") else types[c],
               categories.get(c))
        for c in features
    )
    return Schema(features=cols, target=target, problem=problem if problem != "clustering" else None,  # type: ignore[arg-type]
                  classes=tuple(labels) if labels else None)


def train_spark(
    frame: Any,
    *,
    model_type: str,
    features: list[str] | None = None,
    target: str | None = None,
    problem: str = "classification",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> tuple[SparkModel, dict[str, float]]:
    """Fit the pipeline on the training split of ``frame`` (a Spark DataFrame) and evaluate both splits."""
    features = features or [c for c in frame.columns if c != target]
    estimator = _estimator(model_type, problem, dict(params or {}), seed)
    pipeline = build_pipeline(frame, features, target, problem, estimator)
    train, test = stratified_split(frame, target if problem == "classification" else None, test_fraction, seed)
    train = train.cache()
    try:
        fitted = pipeline.fit(train)
    except Exception as exc:  # py4j / IllegalArgumentException from the JVM
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(
            f"Spark could not fit {model_type}: {first}",
            allowed="a table whose feature columns are numeric, boolean or string",
            got=dict(frame.dtypes),
            fix="check the columns and model.params",
        ) from None
    labels = list(fitted.stages[0].labels) if problem == "classification" else None
    n_classes = len(labels or ())
    metrics = _metrics(fitted.transform(test), problem, "test", n_classes)
    metrics.update(_metrics(fitted.transform(train), problem, "train", n_classes))
    metrics["data/train_rows"] = float(train.count())
    metrics["data/test_rows"] = float(test.count())
    train.unpersist()
    kind = {"classification": "classifier", "regression": "regressor"}.get(problem, "clusterer")
    meta = {"task": "supervised" if problem != "clustering" else "unsupervised", "model_type": model_type,
            "problem": problem, "labels": labels, "engine": "spark"}
    model = SparkModel(fitted, kind=kind, schema=_schema(frame, fitted, features, target, problem, labels), meta=meta)  # type: ignore[arg-type]
    return model, metrics
