"""One check over every model type of the catalog (the pattern of sklearn's test_common.py).

Every row of MODEL_TYPES must train on a tiny budget, save, load, predict with confidence and
reject bad input. A new row needs an entry in TINY below: the test fails until it has one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gravityml.data import load_dataset
from gravityml.errors import GravityMLError
from gravityml.models import load_model
from gravityml.paradigms import TrainContext, train
from gravityml.spec import MODEL_TYPES, load_spec

SUPERVISED_CLS = {"source": "sklearn:iris", "target": "target"}
SUPERVISED_REG = {"source": "sklearn:diabetes", "target": "target"}

#: model type -> the smallest job that exercises it (task, data, params, train settings).
TINY: dict[str, dict[str, Any]] = {
    "logistic_regression": {"data": SUPERVISED_CLS},
    "linear_regression": {"data": SUPERVISED_REG},
    "ridge": {"data": SUPERVISED_REG},
    "decision_tree": {"data": SUPERVISED_CLS},
    "random_forest": {"data": SUPERVISED_CLS, "params": {"n_estimators": 10}},
    "extra_trees": {"data": SUPERVISED_REG, "params": {"n_estimators": 10}},
    "hist_gradient_boosting": {"data": SUPERVISED_CLS, "params": {"max_iter": 20}},
    "svm": {"data": SUPERVISED_CLS},
    "knn": {"data": SUPERVISED_REG},
    "mlp": {"data": SUPERVISED_CLS, "train": {"epochs": 2}},
    "cnn": {"data": {"source": "sklearn:digits", "target": "target"}, "params": {"channels": 4, "blocks": 1}, "train": {"epochs": 1}},
    "text": {
        "data": {"source": str(Path(__file__).parents[2] / "examples/data/spam.csv"), "target": "label", "text": "text"},
        "train": {"epochs": 1},
    },
}

def _observations(size: int, scale: float) -> Any:
    return lambda: pd.DataFrame(
        np.random.default_rng(0).uniform(-scale, scale, (7, size)), columns=[f"obs_{i}" for i in range(size)]
    )


_RL_TRAIN = {"timesteps": 128, "eval_freq": 128, "eval_episodes": 1}
_CARTPOLE = {"task": "reinforcement", "env": {"id": "CartPole-v1"}, "train": _RL_TRAIN, "rows": _observations(4, 0.05)}
_PENDULUM = {"task": "reinforcement", "env": {"id": "Pendulum-v1"}, "train": _RL_TRAIN, "rows": _observations(3, 1.0)}
_OFF_POLICY = {"learning_starts": 32, "buffer_size": 500, "batch_size": 32}
TINY.update(
    {
        "ppo": {**_CARTPOLE, "params": {"n_steps": 64, "batch_size": 64}},
        "a2c": {**_CARTPOLE, "params": {"n_steps": 8}},
        "dqn": {**_CARTPOLE, "params": _OFF_POLICY},
        "sac": {**_PENDULUM, "params": _OFF_POLICY},
        "td3": {**_PENDULUM, "params": _OFF_POLICY},
    }
)

_UNSUPERVISED = {"task": "unsupervised", "data": SUPERVISED_CLS}  # the label only scores the result
_FEW_LABELS = {  # most targets empty: 45 labelled rows per class, the rest unlabelled
    "task": "semi_supervised",
    "data": {"source": str(Path(__file__).parents[2] / "examples/data/digits_5_per_class.csv"), "target": "target"},
}
TINY.update(
    {
        "kmeans": {**_UNSUPERVISED, "params": {"n_clusters": 3}},
        "gaussian_mixture": _UNSUPERVISED,
        "dbscan": {**_UNSUPERVISED, "params": {"eps": 0.8}},
        "hdbscan": _UNSUPERVISED,
        "agglomerative": _UNSUPERVISED,
        "pca": _UNSUPERVISED,
        "isolation_forest": {**_UNSUPERVISED, "params": {"n_estimators": 20}},
        "local_outlier_factor": _UNSUPERVISED,
        "one_class_svm": _UNSUPERVISED,
        "autoencoder": {**_UNSUPERVISED, "train": {"epochs": 2}},
        "label_spreading": _FEW_LABELS,
        "label_propagation": {**_FEW_LABELS, "params": {"max_iter": 50}},
        "self_training": {**_FEW_LABELS, "params": {"base": "decision_tree", "max_rounds": 2}},
        "pseudo_label": {**_FEW_LABELS, "params": {"rounds": 1, "base_params": {"hidden": [8]}}, "train": {"epochs": 2}},
    }
)

# Your own models by entry point go through the same checks (tests/models holds their own tests).
_OWN_TORCH = Path(__file__).parents[2] / "examples" / "own_torch_module"
TINY.update(
    {
        "sklearn": {"data": SUPERVISED_CLS, "model": {"entry_point": "xgboost:XGBClassifier"}, "params": {"n_estimators": 10}},
        "sklearn/lightgbm": {
            "type": "sklearn", "data": SUPERVISED_REG, "model": {"entry_point": "lightgbm:LGBMRegressor"},
            "params": {"n_estimators": 10, "verbose": -1},
        },
        "torch": {
            "data": SUPERVISED_CLS, "model": {"entry_point": "my_nets.residual:build"}, "params": {"width": 8, "blocks": 1},
            "train": {"epochs": 2}, "path": _OWN_TORCH,
        },
        "keras": {
            "data": SUPERVISED_CLS, "model": {"entry_point": "contract_keras_nets:build"}, "params": {"width": 8},
            "train": {"epochs": 2}, "path": Path(__file__).parent / "own_keras",
        },
    }
)
#: Cases that import TensorFlow share one xdist worker (the import alone takes seconds).
_TENSORFLOW_CASES = {"keras"}
#: Exported to ONNX with parity inside the contract (the built-in types have their own export tests).
ONNX_IN_CONTRACT = ("sklearn", "sklearn/lightgbm", "torch", "keras")

PREDICTION_COLUMNS = {
    "classifier": {"prediction", "confidence"},
    "regressor": {"prediction"},
    "clusterer": {"prediction", "confidence"},
    "anomaly_detector": {"score", "is_anomaly"},
    "reducer": set(),
    "policy": {"prediction"},
}


def test_every_catalog_row_has_a_tiny_job() -> None:
    # The spark rows train in tests/spark (one Spark session per module; a JVM per contract case costs minutes).
    spark = {n for n, row in MODEL_TYPES.items() if row.backend == "spark"}
    missing = sorted(set(MODEL_TYPES) - spark - {tiny.get("type", name) for name, tiny in TINY.items()})
    assert not missing, f"add these model types to TINY in {__file__}: {missing}"


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.xdist_group("tensorflow")) if c in _TENSORFLOW_CASES
                                  else c for c in sorted(TINY)])
def test_trains_saves_loads_predicts_and_rejects_bad_input(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = TINY[case]
    model_type = tiny.get("type", case)
    task = tiny.get("task", "supervised")
    if "path" in tiny:  # the user's package sits outside the project, as it would
        monkeypatch.syspath_prepend(str(tiny["path"]))
    doc: dict[str, Any] = {
        "name": f"c-{model_type}",
        "task": task,
        "model": {"type": model_type, "params": tiny.get("params", {}), **tiny.get("model", {})},
        "train": tiny.get("train", {}),
        "compute": {"accelerator": "cpu"},
    }
    for key in ("data", "env"):
        if key in tiny:
            doc[key] = tiny[key]
    spec = load_spec(doc)
    dataset = load_dataset(spec) if spec.data else None
    result = train(TrainContext(spec=spec, workdir=tmp_path, dataset=dataset))
    assert result.metrics, "a trained model reports metrics"
    assert all(np.isfinite(v) or np.isnan(v) for v in result.metrics.values())

    model = load_model(result.model.save(tmp_path / "model"))
    assert type(model) is type(result.model) and model.kind == result.model.kind
    rows = tiny.get("rows")
    sample = rows() if callable(rows) else dataset.X.head(7) if dataset is not None else None
    assert sample is not None
    before = result.model.predict(sample)
    after = model.predict(sample)
    assert len(after) == len(sample)
    assert PREDICTION_COLUMNS[model.kind] <= set(after.columns)
    pd.testing.assert_frame_equal(before, after)
    if "confidence" in after.columns:
        assert after["confidence"].between(0, 1).all()
    if model.kind == "classifier":
        np.testing.assert_allclose(model.predict_proba(sample).sum(axis=1), 1.0, atol=1e-6)

    with pytest.raises(GravityMLError):
        model.predict(pd.DataFrame({"not_a_feature": [1.0]}))
    numeric = [c.name for c in model.schema.features if c.kind == "numeric"]
    if numeric:  # a word where the schema has numbers
        with pytest.raises(GravityMLError, match=rf"column {re.escape(repr(numeric[0]))}.*is not a number"):
            model.predict(sample.astype(object).assign(**{numeric[0]: "not-a-number"}))
    if case in ONNX_IN_CONTRACT:
        from gravityml.inference import export_model

        assert dataset is not None
        dataset.X.head(40).to_csv(tmp_path / "held_out.csv", index=False)
        report = export_model(tmp_path / "model", tmp_path / "onnx", data=tmp_path / "held_out.csv")
        assert report.parity["passed"]
