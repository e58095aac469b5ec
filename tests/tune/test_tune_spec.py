"""The tune: section of a job spec: validated at load, forecast against a budget."""

from __future__ import annotations

import pytest

from gravityml.errors import SpecError
from gravityml.spec import parse_spec

BASE = {"name": "t", "task": "supervised", "data": {"source": "sklearn:iris", "target": "target"},
        "model": {"type": "random_forest"}}


def test_a_search_space_over_model_and_train_parameters_loads() -> None:
    spec = parse_spec({**BASE, "tune": {"metric": "test/accuracy", "trials": 8, "space": {
        "max_depth": {"int": [2, 8]}, "train.lr": {"loguniform": [0.001, 0.1]}, "criterion": {"choice": ["gini", "entropy"]}}}})
    assert spec.tune is not None and spec.tune.space["max_depth"].kind == "int"
    assert spec.tune.search == "optuna-tpe" and spec.tune.scheduler == "none"


def test_a_space_key_that_is_no_parameter_is_refused_with_the_allowed_names() -> None:
    with pytest.raises(SpecError, match=r"tune\.space\.max_dept: 'max_dept' is not a parameter.*allowed: \['bootstrap'"):
        parse_spec({**BASE, "tune": {"metric": "test/accuracy", "space": {"max_dept": {"int": [2, 8]}}}})


def test_a_distribution_names_exactly_one_kind_with_ordered_bounds() -> None:
    with pytest.raises(SpecError, match="low must be < high"):
        parse_spec({**BASE, "tune": {"metric": "test/accuracy", "space": {"max_depth": {"int": [8, 2]}}}})
    with pytest.raises(SpecError, match="exactly one of"):
        parse_spec({**BASE, "tune": {"metric": "test/accuracy", "space": {"max_depth": {"int": [2, 8], "choice": [3]}}}})


def test_the_forecast_says_how_many_trials_the_budget_covers() -> None:
    spec = parse_spec({**BASE, "tune": {"metric": "test/accuracy", "trials": 8, "space": {"max_depth": {"int": [2, 8]}}}})
    assert spec.tune is not None
    f = spec.tune.forecast(0.1, 0.35)
    assert f.over_budget and f.trials_that_fit == 3 and abs(f.total_usd - 0.8) < 1e-9
    assert not spec.tune.forecast(0.1, None).over_budget
