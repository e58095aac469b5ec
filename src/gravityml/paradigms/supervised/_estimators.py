"""scikit-learn estimators by model type, and the preprocessing saved with each model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gravityml.errors import TrainingError
from gravityml.schema import ProblemKind, Schema
from gravityml.spec import MODEL_TYPES, did_you_mean, model_types_where

Factory = Callable[[], Any]


def _classifiers() -> dict[str, Factory]:
    from sklearn import ensemble, linear_model, neighbors, svm, tree

    return {
        "logistic_regression": lambda: linear_model.LogisticRegression(max_iter=2000),
        "decision_tree": tree.DecisionTreeClassifier,
        "random_forest": lambda: ensemble.RandomForestClassifier(n_estimators=200, n_jobs=-1),
        "extra_trees": lambda: ensemble.ExtraTreesClassifier(n_estimators=200, n_jobs=-1),
        "hist_gradient_boosting": ensemble.HistGradientBoostingClassifier,
        "svm": lambda: svm.SVC(probability=True),
        "knn": neighbors.KNeighborsClassifier,
    }


def _regressors() -> dict[str, Factory]:
    from sklearn import ensemble, linear_model, neighbors, svm, tree

    return {
        "linear_regression": linear_model.LinearRegression,
        "ridge": linear_model.Ridge,
        "decision_tree": tree.DecisionTreeRegressor,
        "random_forest": lambda: ensemble.RandomForestRegressor(n_estimators=200, n_jobs=-1),
        "extra_trees": lambda: ensemble.ExtraTreesRegressor(n_estimators=200, n_jobs=-1),
        "hist_gradient_boosting": ensemble.HistGradientBoostingRegressor,
        "svm": svm.SVR,
        "knn": neighbors.KNeighborsRegressor,
    }


#: The built-in supervised scikit-learn types, from the model table.
SKLEARN_SUPERVISED = frozenset(
    n for n in model_types_where(backend="sklearn", entry_point=False) if "supervised" in MODEL_TYPES[n].tasks
)


def build_estimator(model_type: str, problem: ProblemKind, params: dict[str, Any], seed: int) -> Any:
    """An unfitted estimator for ``model_type`` with ``params`` set (and checked by the estimator)."""
    table = _classifiers() if problem == "classification" else _regressors()
    if model_type not in table:
        other = "regression" if problem == "classification" else "classification"
        raise TrainingError(
            f"model.type: {model_type!r} does not do {problem} (the target looks like {problem})",
            allowed=sorted(table),
            got=model_type,
            fix=f"choose a {problem} model type, or set data.problem: {other} if the target is really {other}",
        )
    return configure_estimator(table[model_type](), params, seed)


def configure_estimator(estimator: Any, params: dict[str, Any], seed: int, *, own: tuple[str, ...] = ()) -> Any:
    """Set ``params`` on ``estimator`` after checking their names; seed it unless params do.

    ``own`` names keys gravityml itself reads (already removed from ``params``): they are listed
    as allowed in the error so a misspelt one is suggested too.
    """
    valid = sorted(estimator.get_params(deep=False))
    unknown = [name for name in params if name not in valid]
    if unknown:
        allowed = valid + sorted(own)
        raise TrainingError(
            f"model.params: {unknown[0]!r} is not a parameter of {type(estimator).__name__}"
            f"{did_you_mean(unknown[0], allowed)}",
            allowed=allowed,
            got=unknown[0],
            fix="use the scikit-learn parameter names of the estimator"
            + (", or one of gravityml's own keys" if own else ""),
        )
    if "random_state" in valid and "random_state" not in params:
        estimator.set_params(random_state=seed)
    estimator.set_params(**params)
    return estimator


def build_preprocessor(schema: Schema, *, dense: bool) -> Any:
    """Impute and scale numbers, impute and one-hot encode categories, TF-IDF for text columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts: list[tuple[str, Any, Any]] = []
    numeric = schema.columns_of("numeric") + schema.columns_of("boolean")
    if numeric:
        parts.append(
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
                numeric,
            )
        )
    categorical = schema.columns_of("categorical")
    if categorical:
        parts.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="<missing>"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=not dense),
                ),
                categorical,
            )
        )
    for column in schema.columns_of("text"):
        parts.append(
            (
                f"text_{column}",
                TfidfVectorizer(ngram_range=(1, 2), min_df=1, max_features=50_000, sublinear_tf=True),
                column,
            )
        )
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0 if dense else 0.3)


def needs_dense(model_type: str) -> bool:
    return model_type in {"hist_gradient_boosting", "sklearn"}  # sklearn: your own estimator (boosting libraries, ONNX)
