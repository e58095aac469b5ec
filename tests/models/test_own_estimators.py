"""Your own scikit-learn-API estimator by entry point: XGBoost, LightGBM, a factory's Pipeline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gravityml.data import load_dataset
from gravityml.errors import GravityMLError, SpecError, TrainingError
from gravityml.inference import export_model
from gravityml.models import load_model
from gravityml.paradigms import TrainContext, train
from gravityml.spec import load_spec


def mixed_csv(path: Path, n: int = 300, seed: int = 3) -> Path:
    """Numbers (some missing), a category and a string label that depends on both."""
    rng = np.random.default_rng(seed)
    size = rng.normal(50, 15, n)
    region = rng.choice(["north", "south", "east"], n)
    score = (size - 50) / 15 + np.where(region == "south", 1.2, 0.0) + rng.normal(0, 0.4, n)
    label = np.where(score > 0.3, "review", "approve")
    size[rng.choice(n, 15, replace=False)] = np.nan
    frame = pd.DataFrame({"size": size, "region": region, "label": label})
    frame.to_csv(path, index=False)
    return path


def fit(tmp_path: Path, model: dict[str, Any], data: dict[str, Any]) -> Any:
    spec = load_spec({"name": "own", "task": "supervised", "data": data, "model": model})
    dataset = load_dataset(spec)
    result = train(TrainContext(spec=spec, workdir=tmp_path, dataset=dataset))
    return spec, dataset, result


@pytest.mark.parametrize("entry_point", ["xgboost:XGBClassifier", "lightgbm:LGBMClassifier"])
def test_boosting_classifier_trains_predicts_with_confidence_and_exports_with_parity(entry_point: str, tmp_path: Path) -> None:
    source = mixed_csv(tmp_path / "loans.csv")
    params = {"n_estimators": 30, "max_depth": 3} | ({"verbose": -1} if "lightgbm" in entry_point else {})
    _, dataset, result = fit(tmp_path, {"type": "sklearn", "entry_point": entry_point, "params": params},
                             {"source": str(source), "target": "label"})
    assert result.metrics["test/accuracy"] > 0.8
    model = load_model(result.model.save(tmp_path / "model"))
    rows = dataset.X.head(20)
    out = model.predict(rows)
    assert set(out["prediction"]) <= {"approve", "review"} and out["confidence"].between(0.5, 1).all()
    proba = model.predict_proba(rows)
    assert list(proba.columns) == ["approve", "review"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert model.meta["confidence"] == "predict_proba"
    with pytest.raises(GravityMLError, match="size"):
        model.predict(rows.assign(region=5.5).drop(columns="size"))
    held_out = tmp_path / "held_out.csv"
    dataset.X.head(80).to_csv(held_out, index=False)
    report = export_model(tmp_path / "model", tmp_path / "onnx", data=held_out)
    assert report.parity["passed"] and report.parity["label_agreement"] >= 0.99
    assert report.parity["max_abs_diff"] < 1e-3


@pytest.mark.parametrize("entry_point", ["xgboost:XGBRegressor", "lightgbm:LGBMRegressor"])
def test_boosting_regressor_gives_an_interval_and_exports_with_parity(entry_point: str, tmp_path: Path) -> None:
    params = {"n_estimators": 40} | ({"verbose": -1} if "lightgbm" in entry_point else {})
    _, dataset, result = fit(tmp_path, {"type": "sklearn", "entry_point": entry_point, "params": params},
                             {"source": "sklearn:diabetes", "target": "target"})
    assert result.metrics["test/r2"] > 0.2
    model = load_model(result.model.save(tmp_path / "model"))
    out = model.predict(dataset.X.head(10))
    assert (out["lower"] < out["prediction"]).all() and (out["prediction"] < out["upper"]).all()
    held_out = tmp_path / "held_out.csv"
    dataset.X.head(60).to_csv(held_out, index=False)
    report = export_model(tmp_path / "model", tmp_path / "onnx", data=held_out)
    assert report.parity["passed"]


def test_a_factory_returning_a_pipeline_and_a_decision_function_only_estimator(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "src" / "own_estimators"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import PolynomialFeatures\n"
        "from sklearn.linear_model import LogisticRegression\n\n"
        "def build(degree: int = 2, C: float = 1.0):\n"
        "    return make_pipeline(PolynomialFeatures(degree), LogisticRegression(C=C, max_iter=500))\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    iris = {"source": "sklearn:iris", "target": "target"}
    _, dataset, result = fit(tmp_path, {"type": "sklearn", "entry_point": "own_estimators:build", "params": {"C": 0.5}}, iris)
    assert result.metrics["test/accuracy"] > 0.8
    with pytest.raises(SpecError, match=r"^model.params.degre: 'degre' is not a parameter of build \(did you mean 'degree'\?\)"):
        load_spec({"name": "own", "task": "supervised", "data": iris,
                   "model": {"type": "sklearn", "entry_point": "own_estimators:build", "params": {"degre": 3}}})
    _, dataset, result = fit(tmp_path, {"type": "sklearn", "entry_point": "sklearn.svm:LinearSVC"}, iris)
    proba = result.model.predict_proba(dataset.X.head(10))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert "decision_function" in result.model.meta["confidence"]


def test_entry_point_errors_name_what_is_missing(tmp_path: Path) -> None:
    iris = {"source": "sklearn:iris", "target": "target"}
    base = {"name": "own", "task": "supervised", "data": iris}
    with pytest.raises(SpecError, match=r"^model.entry_point: module 'no_such_pkg' cannot be imported.*To fix: install"):
        load_spec({**base, "model": {"type": "sklearn", "entry_point": "no_such_pkg.models:Thing"}})
    with pytest.raises(SpecError, match=r"'xgboost' has no 'XGBClasifier' \(did you mean 'XGBClassifier'\?\)"):
        load_spec({**base, "model": {"type": "sklearn", "entry_point": "xgboost:XGBClasifier"}})
    with pytest.raises(SpecError, match=r"^model.entry_point: model type 'sklearn' trains your own model and needs its entry point"):
        load_spec({**base, "model": {"type": "sklearn"}})
    with pytest.raises(SpecError, match=r"'knn' is a built-in type"):
        load_spec({**base, "model": {"type": "knn", "entry_point": "xgboost:XGBClassifier"}})
    with pytest.raises(TrainingError, match=r"XGBRegressor.* is a regressor but the target needs classification"):
        fit(tmp_path, {"type": "sklearn", "entry_point": "xgboost:XGBRegressor"}, iris)
    assert "no_such_pkg" not in sys.modules


def test_your_own_classifier_can_be_calibrated(tmp_path: Path) -> None:
    source = mixed_csv(tmp_path / "loans.csv")
    spec = load_spec({
        "name": "own", "task": "supervised", "data": {"source": str(source), "target": "label"},
        "model": {"type": "sklearn", "entry_point": "xgboost:XGBClassifier", "params": {"n_estimators": 20}},
        "train": {"calibrate": "sigmoid"},
    })
    dataset = load_dataset(spec)
    result = train(TrainContext(spec=spec, workdir=tmp_path, dataset=dataset))
    assert result.model.meta["calibration"]["method"] == "sigmoid"
    out = result.model.predict(dataset.X.head(30))
    assert set(out["prediction"]) <= {"approve", "review"}
    np.testing.assert_allclose(result.model.predict_proba(dataset.X.head(30)).sum(axis=1), 1.0, atol=1e-6)
