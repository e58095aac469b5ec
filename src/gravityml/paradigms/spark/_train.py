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
    split_seed: int | None = None,
) -> tuple[SparkModel, dict[str, float]]:
    """Fit the pipeline on the training split of ``frame`` (a Spark DataFrame) and evaluate both splits.

    ``seed`` seeds the estimator, ``split_seed`` (default: ``seed``) the split.
    """
    features = features or [c for c in frame.columns if c != target]
    estimator = _estimator(model_type, problem, dict(params or {}), seed)
    pipeline = build_pipeline(frame, features, target, problem, estimator)
    split_target = target if problem == "classification" else None
    if problem == "regression":  # the label as a column, not a stage: scoring rows carry no target
        from pyspark.sql import functions as F

        frame = frame.withColumn(LABEL, F.col(f"`{target}`").cast("double"))
    train, test = stratified_split(frame, split_target, test_fraction, seed if split_seed is None else split_seed)
    train, test = train.cache(), test.cache()  # each split read once (the evaluators pass over test 2-3 times)
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
    test.unpersist()
    kind = {"classification": "classifier", "regression": "regressor"}.get(problem, "clusterer")
    meta = {"task": "supervised" if problem != "clustering" else "unsupervised", "model_type": model_type,
            "problem": problem, "labels": labels, "engine": "spark"}
    model = SparkModel(fitted, kind=kind, schema=_schema(frame, fitted, features, target, problem, labels), meta=meta)  # type: ignore[arg-type]
    return model, metrics


def _problem(frame: Any, target: str | None, asked: str, task: str) -> str:
    """clustering (unsupervised), the spec's problem, or one inferred from the target column's type."""
    if task == "unsupervised":
        return "clustering"
    if asked != "auto":
        return asked
    if target is None:
        raise TrainingError("data.target: a supervised Spark model needs a target column",
                            allowed="a column of the table", got=None,
                            fix="add data.target")
    kind = dict(frame.dtypes)[target]
    if kind in ("string", "boolean"):
        return "classification"
    if kind in ("int", "bigint", "smallint", "tinyint"):
        from gravityml.data._dataset import MAX_CLASSES_FOR_INTEGER_TARGET

        distinct = frame.select(target).distinct().limit(MAX_CLASSES_FOR_INTEGER_TARGET + 1).count()
        return "classification" if distinct <= MAX_CLASSES_FOR_INTEGER_TARGET else "regression"
    return "regression"


def train(ctx: Any) -> Any:
    """The paradigm entry point for the spark rows of the model table (``TRAINERS``).

    The session is the one this process has (a Spark site's executor opened it on the site's master),
    else a local one. Rows already read (``ctx.dataset``, a job run here) become a Spark DataFrame;
    otherwise the session's executors read ``data.source`` where it lives.
    """
    from pyspark.sql import SparkSession

    from gravityml.data._spark import read_spark_table, spark_fingerprint, spark_table_tags
    from gravityml.models._spark import local_session
    from gravityml.paradigms._base import TrainResult

    spec = ctx.spec
    session = SparkSession.getActiveSession() or local_session()
    data = spec.data
    tags: dict[str, str] = {}
    if ctx.dataset is not None:
        ds = ctx.dataset
        target = ds.target if spec.task == "supervised" else None
        features = list(ds.features)
        frame = session.createDataFrame(ds.frame[features + ([target] if target else [])].reset_index(drop=True))
        asked = ds.problem or "auto"
    else:
        if data is None:
            raise TrainingError("data: a Spark model trains on a table", allowed="data.source: a table or path",
                                got=None, fix="add data.source")
        frame, location = read_spark_table(session, data.source, spec.base_dir, header=data.header)
        target = data.target if spec.task == "supervised" else None
        drop = set(data.drop) | {data.target}
        features = list(data.features or [c for c in frame.columns if c not in drop])
        missing = [c for c in [*features, *([target] if target else [])] if c not in frame.columns]
        if missing:
            raise TrainingError(f"data: {missing} are not columns of {location!r}", allowed=list(frame.columns),
                                got=missing, fix="name columns of the table")
        # kept (memory, then the executors' disks) while the job passes over it: the target's classes, the
        # split, the evaluators; otherwise each pass reads the table again (an s3:// one object by object)
        frame = frame.select(*features, *([target] if target else [])).persist()
        asked = data.problem
        tags.update(data_uri=location, data_fingerprint=spark_fingerprint(frame, location), **spark_table_tags(location))
    problem = _problem(frame, target, asked, spec.task)
    if spec.model.type == "spark_gbt" and problem == "classification" and target is not None:
        classes = frame.select(target).distinct().limit(3).count()
        if classes > 2:
            raise TrainingError(
                "model.type: spark_gbt classifies two classes (Spark's GBTClassifier is binary)",
                allowed="a target with 2 classes", got=f"{classes}+ classes in {target!r}",
                fix="use spark_random_forest or spark_logistic_regression for more classes",
            )
    split = data.split if data is not None else None
    try:
        model, metrics = train_spark(
            frame, model_type=spec.model.type, features=features, target=target, problem=problem,
            params=dict(spec.model.params), seed=spec.train.seed, test_fraction=split.test if split else 0.2,
            split_seed=split.seed if split else None,
        )
    finally:
        frame.unpersist()
    sc = session.sparkContext
    tags.update(engine="spark", spark_master=str(sc.master), spark_app_id=str(sc.applicationId),
                spark_version=str(session.version))
    return TrainResult(model=model, metrics=metrics, tags=tags)
