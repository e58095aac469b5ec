"""scikit-learn clusterers, anomaly detectors and reducers by model type, and the keys of
``model.params`` that gravityml reads itself rather than passing to the estimator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from gravityml.errors import TrainingError
from gravityml.schema import Schema
from gravityml.spec import model_types_where
from gravityml.spec._catalog import UNSUPERVISED_OWN

Role = Literal["clusterer", "anomaly_detector", "reducer"]

#: Above this many training rows, ``kmeans`` uses mini-batch k-means (Sculley 2010,
#: "Web-scale k-means clustering"), whose cost per step does not grow with the data.
MINI_BATCH_ROWS = 10_000

#: Keys of model.params that configure gravityml, not the estimator (from the model table).
OWN_PARAMS = dict(UNSUPERVISED_OWN)

#: The parameter that holds the cluster count, for the types that take ``auto``.
CLUSTER_COUNT = {"kmeans": "n_clusters", "agglomerative": "n_clusters", "gaussian_mixture": "n_components"}


@dataclass(frozen=True)
class Recipe:
    role: Role
    factory: Callable[[dict[str, Any]], Any]


def _recipes() -> dict[str, Recipe]:
    from sklearn import cluster, decomposition, ensemble, mixture, neighbors, svm

    def kmeans(own: dict[str, Any]) -> Any:
        return cluster.MiniBatchKMeans(n_init=3) if own["mini_batch"] else cluster.KMeans(n_init=10)

    return {
        "kmeans": Recipe("clusterer", kmeans),
        "gaussian_mixture": Recipe("clusterer", lambda own: mixture.GaussianMixture(n_components=3)),
        "dbscan": Recipe("clusterer", lambda own: cluster.DBSCAN()),
        "hdbscan": Recipe("clusterer", lambda own: cluster.HDBSCAN(min_cluster_size=5, copy=True)),
        "agglomerative": Recipe("clusterer", lambda own: cluster.AgglomerativeClustering()),
        "pca": Recipe("reducer", lambda own: decomposition.PCA(n_components=2)),
        "isolation_forest": Recipe("anomaly_detector", lambda own: ensemble.IsolationForest(n_estimators=200, n_jobs=-1)),
        # novelty=True: the fitted model scores new rows (the default only labels the training rows).
        # 50 neighbours, not scikit-learn's 20: anomalies of one kind often come in groups larger
        # than 20, and a group that fills a row's neighbourhood looks dense (Breunig et al. 2000
        # advise a MinPts above the size of such groups).
        "local_outlier_factor": Recipe(
            "anomaly_detector", lambda own: neighbors.LocalOutlierFactor(novelty=True, n_neighbors=50)
        ),
        # nu=0.5 (scikit-learn's default), not 0.05: the threshold is set by gravityml from the
        # training scores (contamination / target_fpr), so nu only shapes the score, and a larger
        # nu gives a smoother one. On real data shipped by scikit-learn (10 splits each) test ROC AUC
        # rose from 0.872 to 0.929 (breast cancer), 0.825 to 0.870 (wine), 0.990 to 0.993 (digits).
        "one_class_svm": Recipe("anomaly_detector", lambda own: svm.OneClassSVM(nu=0.5, gamma="scale")),
    }


SKLEARN_UNSUPERVISED = model_types_where(backend="sklearn", flavor="unsupervised")


def split_params(model_type: str, params: dict[str, Any], n_rows: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(gravityml's own settings, the estimator's params), with defaults filled and values checked."""
    own = {
        "scale": params.get("scale", "standard"),
        "n_clusters_range": params.get("n_clusters_range", [2, 10]),
        "contamination": params.get("contamination"),
        "target_fpr": params.get("target_fpr"),
        "mini_batch": params.get("mini_batch", "auto"),
    }
    if own["scale"] not in ("standard", "none"):
        raise TrainingError(
            "model.params.scale: unknown scaling", allowed=["standard", "none"], got=own["scale"], fix="use standard or none"
        )
    low_high = own["n_clusters_range"]
    if not (isinstance(low_high, list) and len(low_high) == 2 and 2 <= int(low_high[0]) < int(low_high[1])):
        raise TrainingError(
            "model.params.n_clusters_range: must be [low, high] with 2 <= low < high",
            got=low_high,
            fix="write n_clusters_range: [2, 10]",
        )
    for key in ("contamination", "target_fpr"):
        value = own[key]
        if value is not None and not (isinstance(value, (int, float)) and 0.0 < float(value) < 0.5):
            raise TrainingError(
                f"model.params.{key}: must be a share between 0 and 0.5", allowed="0 < x < 0.5", got=value,
                fix=f"write {key}: 0.05",
            )
    if own["contamination"] is not None and own["target_fpr"] is not None:
        raise TrainingError(
            "model.params: give contamination or target_fpr, not both (each sets the threshold)",
            got={"contamination": own["contamination"], "target_fpr": own["target_fpr"]},
            fix="keep one of them",
        )
    if own["mini_batch"] == "auto":
        own["mini_batch"] = n_rows > MINI_BATCH_ROWS
    own["mini_batch"] = bool(own["mini_batch"])
    estimator_params = {k: v for k, v in params.items() if k not in OWN_PARAMS}
    return own, estimator_params


def role_of(model_type: str) -> Role:
    return _recipes()[model_type].role


def build_estimator(model_type: str, params: dict[str, Any], own: dict[str, Any], seed: int) -> Any:
    """An unfitted estimator with ``params`` checked against its own parameter names."""
    from gravityml.paradigms.supervised import configure_estimator

    return configure_estimator(_recipes()[model_type].factory(own), params, seed, own=tuple(OWN_PARAMS))


def build_preprocessor(schema: Schema, *, scale: str) -> Any:
    """The supervised preprocessing (impute, encode, scale), dense, with scaling optional."""
    from gravityml.paradigms.supervised import build_preprocessor as supervised_preprocessor

    transformer = supervised_preprocessor(schema, dense=True)
    if scale == "none" and schema.columns_of("numeric") + schema.columns_of("boolean"):
        transformer.set_params(numeric__standardscaler="passthrough")
    return transformer


def fit_checked(estimator: Any, *args: Any, method: str = "fit") -> Any:
    """``estimator.<method>(*args)``, with the estimator's refusal turned into a TrainingError."""
    try:
        return getattr(estimator, method)(*args)
    except (ValueError, TypeError) as exc:
        raise TrainingError(
            f"model.params: {type(estimator).__name__} refused to fit: {str(exc).strip().splitlines()[0]}",
            got=type(estimator).__name__,
            fix="correct model.params (see the estimator's scikit-learn documentation)",
        ) from None
