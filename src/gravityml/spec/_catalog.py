"""The model types a job spec may name: one table, one row per ``model.type``.

A row holds every fact about a type: the tasks it serves, the framework that trains it, the
classes whose constructor signatures (and scikit-learn ``_parameter_constraints``) are its
parameter schema, the keys gravityml reads itself, the saved flavor, ONNX support and, for
reinforcement, the action spaces. The spec checks ``model.type`` and ``model.params`` against this
table when a job is loaded (:mod:`gravityml.spec._params`); each paradigm implements the rows of
its tasks, and a contract test (``tests/paradigms/test_contract.py``) fails if a row has no
implementation or no tiny job.

Classes are named as ``"module:Class"`` strings and imported only when a spec names the type, so
loading a scikit-learn spec never imports torch or Stable-Baselines3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Backend = Literal["sklearn", "torch", "sb3", "tensorflow", "spark"]
TaskName = Literal["supervised", "unsupervised", "semi_supervised", "reinforcement"]

#: model.params keys the unsupervised trainers read themselves (not passed to the estimator).
UNSUPERVISED_OWN: Mapping[str, str] = MappingProxyType(
    {
        "scale": "standard | none: standardise numeric columns first (default standard)",
        "n_clusters_range": "[low, high] searched when the cluster count is auto (default [2, 10])",
        "contamination": "expected share of anomalies in the training rows; sets the threshold",
        "target_fpr": "share of normal rows allowed to be flagged; sets the threshold (default 0.05)",
        "mini_batch": "kmeans: true | false | auto (auto: above 10,000 rows)",
    }
)
#: Keys a supervised classifier also takes when it self-trains (``task: semi_supervised``).
SELF_TRAINING_OWN: Mapping[str, str] = MappingProxyType(
    {
        "base": "the supervised classifier wrapped (self_training only; default logistic_regression)",
        "base_params": "params of the wrapped classifier",
        "threshold": "probability above which a prediction becomes a label (default 0.75)",
        "max_rounds": "self-training rounds at most (default 10)",
        "scale": "standard | none: standardise numeric columns first (default standard)",
    }
)
PSEUDO_LABEL_OWN: Mapping[str, str] = MappingProxyType(
    {
        "base": "mlp (torch, default) or a supervised scikit-learn classifier",
        "base_params": "params of the wrapped model",
        "threshold": "probability above which a prediction becomes a label (default 0.9)",
        "rounds": "pseudo-labelling rounds (default 3)",
        "scale": "standard | none: standardise numeric columns first (default standard)",
    }
)
TEXT_OWN: Mapping[str, str] = MappingProxyType(
    {
        "max_tokens": "tokens kept per row (int >= 1)",
        "max_vocab": "words in the vocabulary at most (int >= 1)",
        "min_count": "rows a word must appear in to be kept (int >= 1)",
    }
)
#: Signature arguments the platform fills from the data, the env, the seed or ``compute``.
NETWORK_SET = ("n_inputs", "n_outputs", "shape", "vocab_size")
SB3_SET = ("env", "device", "seed", "verbose", "tensorboard_log", "_init_setup_model")
_NO_OWN: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ModelType:
    """One model type and everything the platform knows about it.

    ``estimators`` maps a role to the ``"module:Class"`` (or function) whose signature gives the
    parameters: ``classification`` / ``regression`` for supervised scikit-learn types, ``network``
    for torch types, ``algorithm`` for SB3, ``estimator`` otherwise. ``own`` holds the keys of
    ``model.params`` gravityml reads itself, by task; ``platform_set`` the signature arguments it
    fills from the data or ``compute``. ``defaults`` names a ``"module:DICT"`` of per-type default
    params (the torch nets). ``entry_point`` rows (``sklearn``, ``torch``) take the user's own
    model: their parameters are the user's factory's signature.
    """

    name: str
    tasks: frozenset[str]
    backend: Backend
    summary: str
    flavor: str
    estimators: Mapping[str, str] = field(default_factory=dict)
    own: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    platform_set: tuple[str, ...] = ()
    defaults: str | None = None
    onnx: bool = False
    action_spaces: tuple[str, ...] = ()
    off_policy: bool = False
    entry_point: bool = False

    def own_params(self, task: str) -> Mapping[str, str]:
        return self.own.get(task, _NO_OWN)


def _sk(name: str, tasks: str, summary: str, cls: str | None = None, reg: str | None = None, *, onnx: bool = True) -> ModelType:
    """A supervised scikit-learn row; every classifier also self-trains under semi_supervised."""
    estimators = {k: f"sklearn.{v}" for k, v in (("classification", cls), ("regression", reg)) if v}
    own = {"semi_supervised": SELF_TRAINING_OWN} if "semi_supervised" in tasks else {}
    return ModelType(name, frozenset(tasks.split()), "sklearn", summary, "sklearn", estimators, own, onnx=onnx)


def _unsup(name: str, summary: str, cls: str, *, onnx: bool, mini_batch: str | None = None) -> ModelType:
    estimators = {"estimator": f"sklearn.{cls}"} | ({"mini_batch": f"sklearn.{mini_batch}"} if mini_batch else {})
    return ModelType(
        name, frozenset({"unsupervised"}), "sklearn", summary, "unsupervised", estimators,
        {"unsupervised": UNSUPERVISED_OWN}, onnx=onnx,
    )


def _semi(name: str, summary: str, cls: str | None, own: Mapping[str, str], backend: Backend = "sklearn") -> ModelType:
    estimators = {"estimator": f"sklearn.{cls}"} if cls else {}
    return ModelType(name, frozenset({"semi_supervised"}), backend, summary, "sklearn", estimators, {"semi_supervised": own}, onnx=True)


def _net(name: str, summary: str, cls: str, own: Mapping[str, str] = _NO_OWN) -> ModelType:
    return ModelType(
        name, frozenset({"supervised"}), "torch", summary, "torch", {"network": f"gravityml.models._net_params:{cls}"},
        {"supervised": own}, NETWORK_SET, "gravityml.models._net_params:DEFAULTS", onnx=True,
    )


def _sb3(name: str, summary: str, cls: str, spaces: str, *, off_policy: bool) -> ModelType:
    return ModelType(
        name, frozenset({"reinforcement"}), "sb3", summary, "sb3", {"algorithm": f"stable_baselines3:{cls}"},
        platform_set=SB3_SET, onnx=True, action_spaces=tuple(spaces.split()), off_policy=off_policy,
    )


#: What the spark trainer sets on a pyspark.ml estimator itself (its columns, from the data; the seed).
SPARK_SET = ("featuresCol", "labelCol", "predictionCol", "probabilityCol", "rawPredictionCol", "seed", "weightCol",
             "leafCol", "validationIndicatorCol")


def _spark(name: str, tasks: str, summary: str, **estimators: str) -> ModelType:
    """A pyspark.ml estimator trained by a Spark job where the table lives (paradigms/spark)."""
    return ModelType(name, frozenset(tasks.split()), "spark", summary, "spark",
                     {k: f"pyspark.ml.{v}" for k, v in estimators.items()}, platform_set=SPARK_SET)


_ROWS = [
    # Supervised, scikit-learn backed. Semi-supervised self-training wraps any of the classifiers.
    _sk("logistic_regression", "supervised semi_supervised", "linear classifier", "linear_model:LogisticRegression"),
    _sk("linear_regression", "supervised", "ordinary least squares", reg="linear_model:LinearRegression"),
    _sk("ridge", "supervised", "L2-regularised linear regression", reg="linear_model:Ridge"),
    _sk("decision_tree", "supervised semi_supervised", "a single CART tree", "tree:DecisionTreeClassifier", "tree:DecisionTreeRegressor"),
    _sk("random_forest", "supervised semi_supervised", "bagged trees", "ensemble:RandomForestClassifier", "ensemble:RandomForestRegressor"),
    _sk("extra_trees", "supervised semi_supervised", "extremely randomised trees", "ensemble:ExtraTreesClassifier", "ensemble:ExtraTreesRegressor"),
    _sk(
        "hist_gradient_boosting", "supervised semi_supervised", "histogram gradient boosting",
        "ensemble:HistGradientBoostingClassifier", "ensemble:HistGradientBoostingRegressor",
    ),
    _sk("svm", "supervised semi_supervised", "support vector machine (RBF)", "svm:SVC", "svm:SVR"),
    _sk("knn", "supervised semi_supervised", "k nearest neighbours", "neighbors:KNeighborsClassifier", "neighbors:KNeighborsRegressor"),
    # The user's own model by entry point: any scikit-learn-API estimator, or a torch module factory.
    ModelType(
        "sklearn", frozenset({"supervised"}), "sklearn", "your scikit-learn-API estimator or Pipeline (entry_point)",
        "sklearn", entry_point=True, onnx=True,
    ),
    ModelType(
        "torch", frozenset({"supervised"}), "torch", "your torch.nn.Module from a factory (entry_point)",
        "torch", platform_set=("inputs", "outputs"), entry_point=True, onnx=True,
    ),
    ModelType(
        "keras", frozenset({"supervised"}), "tensorflow", "your Keras 3 model from a factory (entry_point; TensorFlow)",
        "keras", platform_set=("inputs", "outputs"), entry_point=True, onnx=True,
    ),
    # Supervised, PyTorch backed (paradigms/deep): tabular, images, text.
    _net("mlp", "multi-layer perceptron for tables", "MLP"),
    _net("cnn", "small residual convolutional net for images", "CNN"),
    _net("text", "embedding-bag text classifier (own vocabulary)", "TextNet", TEXT_OWN),
    # Unsupervised (paradigms/unsupervised): clustering, anomaly detection, reduction.
    _unsup("kmeans", "k-means (mini-batch on large data); n_clusters: auto", "cluster:KMeans", onnx=True, mini_batch="cluster:MiniBatchKMeans"),
    _unsup("gaussian_mixture", "Gaussian mixture, soft memberships", "mixture:GaussianMixture", onnx=True),
    _unsup("dbscan", "density-based clusters with noise", "cluster:DBSCAN", onnx=False),
    _unsup("hdbscan", "hierarchical density-based clusters", "cluster:HDBSCAN", onnx=False),
    _unsup("agglomerative", "agglomerative (Ward) clustering", "cluster:AgglomerativeClustering", onnx=False),
    _unsup("pca", "principal components (dimensionality reduction)", "decomposition:PCA", onnx=True),
    _unsup("isolation_forest", "anomaly detection by random isolation", "ensemble:IsolationForest", onnx=True),
    _unsup("local_outlier_factor", "anomaly detection by local density", "neighbors:LocalOutlierFactor", onnx=True),
    _unsup("one_class_svm", "anomaly detection by a one-class SVM", "svm:OneClassSVM", onnx=True),
    ModelType(
        "autoencoder", frozenset({"unsupervised"}), "torch", "anomaly detection by reconstruction error", "autoencoder",
        {"network": "gravityml.models._unsupervised:build_autoencoder"},
        {"unsupervised": {k: UNSUPERVISED_OWN[k] for k in ("scale", "contamination", "target_fpr")}},
        ("n_inputs",), onnx=True,
    ),
    # Semi-supervised (paradigms/semi_supervised); the supervised classifiers above self-train.
    _semi("label_spreading", "graph label spreading", "semi_supervised:LabelSpreading", {"scale": SELF_TRAINING_OWN["scale"]}),
    _semi("label_propagation", "graph label propagation", "semi_supervised:LabelPropagation", {"scale": SELF_TRAINING_OWN["scale"]}),
    _semi("self_training", "self-training around params.base", None, SELF_TRAINING_OWN),
    _semi("pseudo_label", "pseudo-labelling rounds around params.base", None, PSEUDO_LABEL_OWN, "torch"),
    # Reinforcement, Stable-Baselines3 backed (action spaces: SB3's own table,
    # https://stable-baselines3.readthedocs.io/en/master/guide/algos.html).
    _sb3("ppo", "proximal policy optimisation (any action space)", "PPO", "Box Discrete MultiDiscrete MultiBinary", off_policy=False),
    _sb3("a2c", "advantage actor-critic (any action space)", "A2C", "Box Discrete MultiDiscrete MultiBinary", off_policy=False),
    _sb3("dqn", "deep Q-network (discrete actions)", "DQN", "Discrete", off_policy=True),
    _sb3("sac", "soft actor-critic (continuous actions)", "SAC", "Box", off_policy=True),
    _sb3("td3", "twin delayed DDPG (continuous actions)", "TD3", "Box", off_policy=True),
    # Spark MLlib (paradigms/spark; the `spark` extra): trained on a Spark site's cluster, or local[N] here.
    _spark("spark_logistic_regression", "supervised", "Spark MLlib logistic regression",
           classification="classification:LogisticRegression"),
    _spark("spark_random_forest", "supervised", "Spark MLlib random forest",
           classification="classification:RandomForestClassifier", regression="regression:RandomForestRegressor"),
    _spark("spark_gbt", "supervised", "Spark MLlib gradient-boosted trees",
           classification="classification:GBTClassifier", regression="regression:GBTRegressor"),
    _spark("spark_linear_regression", "supervised", "Spark MLlib linear regression",
           regression="regression:LinearRegression"),
    _spark("spark_kmeans", "unsupervised", "Spark MLlib k-means", estimator="clustering:KMeans"),
    _spark("spark_gaussian_mixture", "unsupervised", "Spark MLlib Gaussian mixture",
           estimator="clustering:GaussianMixture"),
]

MODEL_TYPES: dict[str, ModelType] = {row.name: row for row in _ROWS}


def model_types_for(task: str) -> list[str]:
    """The model type names that serve ``task``, sorted."""
    return sorted(name for name, row in MODEL_TYPES.items() if task in row.tasks)


def model_types_where(**facts: object) -> frozenset[str]:
    """The names of the rows whose attributes equal ``facts`` (``backend="sklearn"``, ``onnx=True``)."""
    return frozenset(n for n, row in MODEL_TYPES.items() if all(getattr(row, k) == v for k, v in facts.items()))
