"""Your own scikit-learn-API estimator (``model.type: sklearn``), by entry point.

``model.entry_point`` names a class (``xgboost:XGBClassifier``, ``lightgbm:LGBMRegressor``) or a
factory returning an estimator or a ``Pipeline``; ``model.params`` are its keyword arguments. The
platform's preprocessing (impute, scale, one-hot) and schema checks wrap it as they wrap the
built-in types: every estimator receives one dense float matrix, categoricals one-hot encoded,
which is the input XGBoost and LightGBM take without their native categorical options and the one
their ONNX converters accept. Class labels reach it as codes ``0..k-1`` in the order of the
schema's classes (XGBoost requires exactly that, https://github.com/dmlc/xgboost/pull/7269); the
saved model answers in the user's labels.
"""

from __future__ import annotations

from typing import Any

from gravityml.errors import TrainingError
from gravityml.spec import JobSpec, load_entry_point


def is_classifier(estimator: Any) -> bool:
    from sklearn.base import is_classifier as sk_is_classifier

    try:
        return bool(sk_is_classifier(estimator))
    except Exception:  # noqa: BLE001 - an estimator without scikit-learn tags: judge by its methods
        return hasattr(estimator, "predict_proba") or hasattr(estimator, "classes_")


def build_own_estimator(spec: JobSpec, problem: str) -> Any:
    """The user's estimator, made from the entry point with ``model.params``, checked for the problem."""
    assert spec.model.entry_point is not None
    factory = load_entry_point(spec.model.entry_point, base_dir=spec.base_dir)
    params = dict(spec.model.params)
    try:
        estimator = factory(**params)
    except (TypeError, ValueError) as exc:
        raise TrainingError(
            f"model.entry_point: {spec.model.entry_point} refused model.params: {str(exc).splitlines()[0]}",
            got=params,
            fix="give the parameters its signature takes",
        ) from None
    missing = [m for m in ("fit", "predict") if not callable(getattr(estimator, m, None))]
    if missing:
        raise TrainingError(
            f"model.entry_point: {spec.model.entry_point} gave a {type(estimator).__name__}, which has no {missing}",
            allowed="an object with fit(X, y) and predict(X) (a scikit-learn-API estimator or Pipeline)",
            got=type(estimator).__name__,
            fix="return an estimator or a Pipeline from the factory",
        )
    classifies = is_classifier(estimator)
    if (problem == "classification") != classifies:
        did = "a classifier" if classifies else "a regressor"
        raise TrainingError(
            f"model.entry_point: {spec.model.entry_point} is {did} but the target needs {problem}",
            got=type(estimator).__name__,
            fix="name the estimator for this problem (XGBClassifier / XGBRegressor), or set data.problem",
        )
    if classifies and not (hasattr(estimator, "predict_proba") or hasattr(estimator, "decision_function")):
        raise TrainingError(
            f"model.entry_point: {type(estimator).__name__} has neither predict_proba nor decision_function, "
            "so its predictions have no confidence",
            got=type(estimator).__name__,
            fix="wrap it: sklearn.calibration.CalibratedClassifierCV(estimator) gives it predict_proba",
        )
    names = estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {}
    if "random_state" in names and "random_state" not in params and hasattr(estimator, "set_params"):
        estimator.set_params(random_state=spec.train.seed)
    return estimator


def confidence_method(estimator: Any) -> str:
    """Where a classifier's confidence comes from (recorded with the model)."""
    if hasattr(estimator, "predict_proba"):
        return "predict_proba"
    return "softmax of decision_function (the estimator has no predict_proba)"


def label_codes(y: Any, classes: list[Any]) -> Any:
    """``y`` as integer codes: the position of each label in ``classes``."""
    import numpy as np

    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[v.item() if hasattr(v, "item") else v] for v in y], dtype="int64")


#: Libraries of tree ensembles: their splits do not care about scale, so numbers reach them unscaled.
#: That also keeps an exported graph exact: a float32 scaler in ONNX moves values that sit on a
#: split threshold to the other side (https://onnx.ai/sklearn-onnx/auto_tutorial/plot_ebegin_float_double.html).
TREE_LIBRARIES = ("xgboost", "lightgbm", "catboost")


def unscaled(estimator: Any) -> bool:
    return type(estimator).__module__.split(".")[0] in TREE_LIBRARIES
