from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gravityml.data import infer_problem, load_dataset
from gravityml.errors import DataError
from gravityml.spec import load_spec


def spec(**data: object) -> object:
    return load_spec(
        {"name": "d", "task": "supervised", "data": {"source": "sklearn:iris", "target": "target", **data}, "model": {"type": "knn"}}
    )


def test_split_is_deterministic_and_stratified() -> None:
    dataset = load_dataset(spec(split={"test": 0.2, "seed": 5}))
    a, b = dataset.split(), dataset.split()
    assert list(a.test.index) == list(b.test.index)
    assert len(a.test) == 30 and len(a.train) == 120
    assert a.test["target"].value_counts().tolist() == [10, 10, 10]
    other = load_dataset(spec(split={"test": 0.2, "seed": 6})).split()
    assert list(other.test.index) != list(a.test.index)


def test_validation_split() -> None:
    parts = load_dataset(spec(split={"test": 0.2, "validation": 0.25, "seed": 1})).split()
    assert parts.validation is not None
    assert len(parts.train) + len(parts.validation) + len(parts.test) == 150
    assert set(parts.train.index).isdisjoint(parts.validation.index)


def test_problem_kind_is_inferred() -> None:
    assert infer_problem(pd.Series(["a", "b"]), "auto") == "classification"
    assert infer_problem(pd.Series([0, 1, 1, 0]), "auto") == "classification"
    assert infer_problem(pd.Series([0.5, 1.25, 3.0]), "auto") == "regression"
    assert infer_problem(pd.Series(range(100)), "auto") == "regression"
    assert infer_problem(pd.Series([0, 1]), "regression") == "regression"


def test_unknown_target_names_the_columns() -> None:
    with pytest.raises(DataError, match=r"data.target: column 'targt' not found \(did you mean 'target'\?\); allowed: \[.*'sepal length \(cm\)'"):
        load_dataset(spec(target="targt"))


def test_unknown_feature_and_drop_columns() -> None:
    with pytest.raises(DataError, match="data.features: column 'nope' not found"):
        load_dataset(spec(features=["nope"]))
    with pytest.raises(DataError, match="data.drop: column 'nope' not found"):
        load_dataset(spec(drop=["nope"]))


def test_schema_records_columns_kinds_and_classes(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    pd.DataFrame({"n": [1.0, 2.0, None, 4.0], "c": ["a", "b", "a", None], "y": ["no", "yes", "no", "yes"]}).to_csv(path, index=False)
    dataset = load_dataset(load_spec({"name": "d", "task": "supervised", "data": {"source": str(path), "target": "y"}, "model": {"type": "knn"}}))
    schema = dataset.schema()
    assert [(c.name, c.kind) for c in schema.features] == [("n", "numeric"), ("c", "categorical")]
    assert schema.features[1].categories == ("a", "b")
    assert schema.classes == ("no", "yes") and schema.problem == "classification"
