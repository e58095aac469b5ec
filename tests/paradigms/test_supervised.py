"""Supervised scikit-learn training through the paradigm API (no tracking involved)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gravityml.data import load_dataset
from gravityml.errors import SpecError, TrainingError
from gravityml.models import load_model
from gravityml.paradigms import TrainContext, train
from gravityml.spec import load_spec


def run(tmp_path: Path, **doc: object):
    base = {"name": "s", "task": "supervised", "data": {"source": "sklearn:iris", "target": "target"}, "model": {"type": "knn"}}
    base.update(doc)
    spec = load_spec(base)
    return train(TrainContext(spec=spec, workdir=tmp_path, dataset=load_dataset(spec)))


def test_classification_metrics_and_plots(tmp_path: Path) -> None:
    result = run(tmp_path, model={"type": "logistic_regression"})
    for key in ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss"):
        assert f"test/{key}" in result.metrics
    assert result.metrics["test/accuracy"] > 0.85
    assert {p.name for p in result.artifacts} == {"confusion_matrix.png", "roc_curve.png", "reliability.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in result.artifacts)
    assert 0.0 <= result.metrics["test/ece"] <= 1.0


def test_regression_metrics_and_interval(tmp_path: Path) -> None:
    result = run(tmp_path, data={"source": "sklearn:diabetes", "target": "target"}, model={"type": "ridge"})
    assert {"test/rmse", "test/mae", "test/r2"} <= set(result.metrics)
    assert result.metrics["test/r2"] > 0.3
    frame = result.model.predict(load_dataset(load_spec({"name": "s", "task": "supervised", "data": {"source": "sklearn:diabetes", "target": "target"}, "model": {"type": "ridge"}})).X.head(5))
    assert list(frame.columns) == ["prediction", "lower", "upper"]
    assert (frame["lower"] < frame["prediction"]).all() and (frame["prediction"] < frame["upper"]).all()


def test_categorical_and_missing_values_are_handled_by_the_saved_pipeline(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 300
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    y = np.where((colour == "red") | (size > 1), "yes", "no")
    size[rng.random(n) < 0.1] = np.nan
    colour = colour.astype(object)
    colour[rng.random(n) < 0.05] = None
    path = tmp_path / "rows.csv"
    pd.DataFrame({"colour": colour, "size": size, "y": y}).to_csv(path, index=False)
    result = run(tmp_path, data={"source": str(path), "target": "y"}, model={"type": "random_forest"})
    assert result.metrics["test/accuracy"] > 0.8
    saved = load_model(result.model.save(tmp_path / "model"))
    out = saved.predict(pd.DataFrame({"colour": ["red", None], "size": [None, 2.5]}))
    assert list(out["prediction"]) == ["yes", "yes"]
    assert ((out["confidence"] > 0.5) & (out["confidence"] <= 1)).all()


def test_params_are_passed_through_and_checked_by_the_estimator(tmp_path: Path) -> None:
    result = run(tmp_path, model={"type": "knn", "params": {"n_neighbors": 3}})
    assert result.params["estimator"]["n_neighbors"] == 3
    # Names and values are checked against the estimator's signature and constraints when the spec loads.
    with pytest.raises(SpecError, match=r"'n_neigbors' is not a parameter of knn \(KNeighborsClassifier, KNeighborsRegressor\) \(did you mean 'n_neighbors'\?\)"):
        run(tmp_path, model={"type": "knn", "params": {"n_neigbors": 3}})
    with pytest.raises(SpecError, match=r"model.params.n_neighbors: knn refuses n_neighbors=-1 .*allowed: 'an int in the range \[1, inf\)"):
        run(tmp_path, model={"type": "knn", "params": {"n_neighbors": -1}})
    # What only fitting can find out is still the estimator's refusal at train time.
    with pytest.raises(TrainingError, match=r"SVC refused to fit"):
        run(tmp_path, model={"type": "svm", "params": {"kernel": "precomputed"}})


def test_a_model_type_that_cannot_do_the_problem_says_so(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"'linear_regression' does not do classification"):
        run(tmp_path, model={"type": "linear_regression"})


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    a = run(tmp_path, model={"type": "random_forest", "params": {"n_estimators": 20}})
    b = run(tmp_path, model={"type": "random_forest", "params": {"n_estimators": 20}})
    assert a.metrics == b.metrics


def test_integer_class_labels_from_a_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 2))
    path = tmp_path / "ints.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] > 0).astype(int)}).to_csv(path, index=False)
    result = run(tmp_path, data={"source": str(path), "target": "y"}, model={"type": "logistic_regression"})
    assert result.metrics["test/accuracy"] > 0.9 and result.metrics["test/roc_auc"] > 0.9
    assert set(result.model.predict(pd.DataFrame({"a": [2.0, -2.0], "b": [0.0, 0.0]}))["prediction"]) == {0, 1}


def test_expected_calibration_error_is_the_weighted_gap_between_confidence_and_accuracy() -> None:
    from gravityml.paradigms._metrics import calibration_bins, expected_calibration_error

    # 10 rows at confidence 0.9 of which 5 right (gap 0.4), 10 at 0.6 of which 6 right (gap 0).
    correct = np.array([1] * 5 + [0] * 5 + [1] * 6 + [0] * 4)
    confidence = np.array([0.9] * 10 + [0.6] * 10)
    assert expected_calibration_error(correct, confidence) == pytest.approx(0.2)
    assert [b["rows"] for b in calibration_bins(correct, confidence)] == [10.0, 10.0]
    assert expected_calibration_error(np.ones(4), np.ones(4)) == 0.0


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_on_validation_rows_lowers_an_overconfident_trees_ece(tmp_path: Path, method: str) -> None:
    doc = {"data": {"source": "sklearn:breast_cancer", "target": "target"}, "model": {"type": "decision_tree", "params": {"random_state": 0}}}
    (tmp_path / "plain").mkdir()
    (tmp_path / "cal").mkdir()
    plain = run(tmp_path / "plain", **doc)
    calibrated = run(tmp_path / "cal", **doc, train={"calibrate": method})
    m = calibrated.metrics
    # An unpruned tree says 1.0 for every row; calibrated on rows it did not see, it says less.
    assert plain.metrics["test/ece"] > 0.05
    assert m["test/ece"] < m["test/ece_uncalibrated"]
    assert m["data/calibration_rows"] == 46 and m["data/train_rows"] == 409
    assert calibrated.tags["calibration"].startswith(f"{method} on 46 validation rows")
    assert calibrated.model.meta["calibration"] == {"method": method, "rows": 46}
    rows = load_dataset(load_spec({"name": "s", "task": "supervised", **doc})).X.head(30)
    saved = load_model(calibrated.model.save(tmp_path / "model"))
    pd.testing.assert_frame_equal(saved.predict_proba(rows), calibrated.model.predict_proba(rows))
    assert saved.predict(rows)["confidence"].max() < 1.0


def test_calibration_that_does_not_fit_the_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"train.calibrate: logistic_regression cannot use temperature calibration; allowed: \['sigmoid', 'isotonic'\]"):
        run(tmp_path, model={"type": "logistic_regression"}, train={"calibrate": "temperature"})
    with pytest.raises(TrainingError, match="train.calibrate: calibration maps class probabilities, and this job is a regression"):
        run(tmp_path, data={"source": "sklearn:diabetes", "target": "target"}, model={"type": "ridge"}, train={"calibrate": "sigmoid"})
