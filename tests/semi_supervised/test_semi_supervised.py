"""Semi-supervised learning: digits from 5 labels per class, the labelled-only baseline and its
gain in the run's metrics, self-training and pseudo-labelling, and the specs that are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import gravityml
from gravityml.data import load_dataset
from gravityml.errors import DataError, SpecError, TrainingError
from gravityml.execution import run_job
from gravityml.models import load_model
from gravityml.paradigms import TrainContext, TrainResult, train
from gravityml.paradigms.semi_supervised import pseudo_label
from gravityml.spec import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DIGITS = EXAMPLES / "data" / "digits_5_per_class.csv"


def _iris_few_labels(path: Path, per_class: int = 20, seed: int = 0) -> Path:
    """iris with ``per_class`` labels per species (test rows come from these too), rest empty."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(frame["target"] == c), per_class, replace=False) for c in ("setosa", "versicolor", "virginica")])
    frame.loc[~frame.index.isin(keep), "target"] = None
    frame.to_csv(path, index=False)
    return path


def _fit(tmp_path: Path, model: dict[str, Any], source: Path, **extra: Any) -> TrainResult:
    spec = load_spec(
        {
            "name": "semi",
            "task": "semi_supervised",
            "data": {"source": str(source), "target": "target", "split": {"test": 0.5, "seed": 1}},
            "model": model,
            "compute": {"accelerator": "cpu", "threads": 1},
            **extra,
        }
    )
    return train(TrainContext(spec=spec, workdir=tmp_path, dataset=load_dataset(spec)))


def test_label_spreading_learns_digits_from_five_labels_per_class(workspace) -> None:
    result = run_job(EXAMPLES / "digits_label_spreading.yaml")
    m = result.metrics
    assert m["data/labelled_rows"] == 50 and m["data/unlabelled_rows"] == 1347 and m["data/test_rows"] == 400
    assert m["test/accuracy"] >= 0.90
    assert m["semi_supervised/gain"] >= 0.05
    assert m["semi_supervised/gain"] == pytest.approx(m["test/accuracy"] - m["labelled_only/test/accuracy"])

    model = gravityml.load(result.model_ref)
    rows = pd.read_csv(DIGITS)
    labelled = rows[rows["target"].notna()].head(100)
    out = model.predict(labelled)
    assert out["confidence"].between(0, 1).all()
    assert set(out["prediction"]) <= set(range(10))  # the labels, as integers (not 3.0)
    assert (out["prediction"].to_numpy() == labelled["target"].astype(int).to_numpy()).mean() > 0.85


def test_a_spec_with_no_unlabelled_rows_is_refused(cli, write_spec, tmp_path) -> None:
    spec = write_spec(tmp_path / "job.yaml", task="semi_supervised", model={"type": "label_spreading"})
    code, out, err = cli("train", str(spec))
    assert code == 2
    assert "has a value in every row, so there is nothing unlabelled" in err + out
    assert "To fix: use task: supervised" in err + out


def test_a_spec_with_no_labelled_rows_is_refused(tmp_path) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.1, 0.2], "target": [None, None, None]})
    frame.to_csv(tmp_path / "none.csv", index=False)
    spec = load_spec({"name": "x", "task": "semi_supervised", "data": {"source": str(tmp_path / "none.csv"), "target": "target"},
                      "model": {"type": "label_spreading"}})
    with pytest.raises(DataError, match="is empty in every row; semi-supervised learning needs some labels"):
        load_dataset(spec)


def test_a_supervised_type_self_trains_and_reports_its_baseline(tmp_path) -> None:
    result = _fit(tmp_path, {"type": "random_forest", "params": {"n_estimators": 20, "threshold": 0.8}}, _iris_few_labels(tmp_path / "i.csv"))
    assert result.tags["semi_supervised.method"] == "self-training around random_forest"
    assert result.metrics["test/accuracy"] > 0.8 and "labelled_only/test/accuracy" in result.metrics
    loaded = load_model(result.model.save(tmp_path / "m"))
    sample = pd.read_csv(tmp_path / "i.csv").head(10)
    pd.testing.assert_frame_equal(loaded.predict(sample), result.model.predict(sample))
    assert set(loaded.predict(sample)["prediction"]) <= {"setosa", "versicolor", "virginica"}


def test_self_training_names_its_base_and_checks_it(tmp_path) -> None:
    source = _iris_few_labels(tmp_path / "i.csv")
    result = _fit(tmp_path, {"type": "self_training", "params": {"base": "svm", "threshold": 0.7}}, source)
    assert result.params["method"]["base"] == "svm" and result.metrics["test/accuracy"] > 0.8
    with pytest.raises(SpecError, match="'random_forrest' is not a supervised scikit-learn classifier.*did you mean 'random_forest'"):
        _fit(tmp_path, {"type": "self_training", "params": {"base": "random_forrest"}}, source)
    with pytest.raises(SpecError, match="'treshold' is not a parameter of self_training.*did you mean 'threshold'"):
        _fit(tmp_path, {"type": "self_training", "params": {"treshold": 0.7}}, source)


def test_pseudo_labelling_around_the_torch_mlp(tmp_path) -> None:
    result = _fit(
        tmp_path,
        {"type": "pseudo_label", "params": {"base": "mlp", "threshold": 0.8, "rounds": 2, "base_params": {"hidden": [16]}}},
        _iris_few_labels(tmp_path / "i.csv"),
        train={"epochs": 100, "lr": 0.01, "seed": 3},
    )
    assert type(result.model).__name__ == "TorchModel"
    assert result.model.meta["pseudo_label"]["rounds_run"] >= 1
    assert result.metrics["test/accuracy"] > 0.7
    assert np.isfinite(result.metrics["semi_supervised/gain"])


def test_the_pseudo_label_loop_adds_only_confident_rows() -> None:
    seen: list[int] = []

    class Model:
        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
            # confident about rows with x > 0.5 (class 1), unsure below
            x = X["x"].to_numpy()
            return np.where(x[:, None] > 0.5, [[0.05, 0.95]], [[0.6, 0.4]])

    def fit(X: pd.DataFrame, codes: np.ndarray) -> Model:
        seen.append(len(X))
        return Model()

    X_lab = pd.DataFrame({"x": [0.0, 1.0]})
    X_unl = pd.DataFrame({"x": [0.1, 0.7, 0.9, 0.2]})
    result = pseudo_label(fit, X_lab, np.array([0, 1]), X_unl, threshold=0.9, rounds=5)
    assert seen == [2, 4]  # labelled alone, then + the two confident rows; the repeat stops the loop
    assert result.rounds_run == 1 and "unchanged" in result.stopped


def test_regression_targets_are_refused(tmp_path) -> None:
    frame = pd.DataFrame({"a": np.arange(40.0), "target": [v * 1.37 if v % 2 else None for v in range(40)]})
    frame.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(TrainingError, match="predicts classes"):
        _fit(tmp_path, {"type": "label_spreading"}, tmp_path / "r.csv")


def test_the_gain_is_also_measured_against_a_logistic_regression_on_the_labelled_rows(tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    source = _iris_few_labels(tmp_path / "i.csv", per_class=6)
    result = _fit(tmp_path, {"type": "label_spreading"}, source)
    m = result.metrics
    # The baseline, fitted here by hand on the same labelled training rows, scores the same test rows.
    spec = load_spec({"name": "semi", "task": "semi_supervised", "data": {"source": str(source), "target": "target",
                      "split": {"test": 0.5, "seed": 1}}, "model": {"type": "label_spreading"}})
    split = load_dataset(spec).split()
    features = [c for c in split.train.columns if c != "target"]
    scaler = StandardScaler().fit(split.train[features])
    bare = LogisticRegression(max_iter=1000).fit(scaler.transform(split.train[features]), split.train["target"].astype(str))
    bare_accuracy = float((bare.predict(scaler.transform(split.test[features])) == split.test["target"].astype(str)).mean())
    assert m["baseline/test/accuracy"] == pytest.approx(bare_accuracy)
    assert m["semi_supervised/gain_over_baseline"] == pytest.approx(m["test/accuracy"] - bare_accuracy)
    assert m["semi_supervised/gain"] == pytest.approx(m["test/accuracy"] - m["labelled_only/test/accuracy"])
    assert "same method on the labelled rows alone" in result.tags["semi_supervised.gain"]
    assert "logistic regression" in result.tags["semi_supervised.gain_over_baseline"]
