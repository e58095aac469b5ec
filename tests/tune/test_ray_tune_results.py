"""Ray Tune's results read back as an Optuna study (no cluster: the result objects are what
``Tuner.fit()`` returns, reduced to the two fields read)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna

from gravityml.execution._raytune import _as_study
from gravityml.execution._tune import _distributions
from gravityml.spec._tune import TuneSpec


def test_a_trial_ended_before_its_config_was_reported_is_a_trial_without_params() -> None:
    """A trial Ray ended at the cap on a loaded machine came back without its drawn values, and reading
    it back raised Optuna's "Inconsistent parameters {...} and distributions {'n_estimators'}" (a clean
    clone's run of tests/scale/cluster/test_ray_tune.py at load 9, Ray 2.60): it is one trial, no params."""
    tune = TuneSpec.model_validate({"metric": "test/accuracy", "trials": 3,
                                    "space": {"n_estimators": {"choice": [5, 40000]}}})
    grid = [
        SimpleNamespace(config={"n_estimators": 5}, metrics={"timestamp": 1, "final": 0.93, "source": "test"}),
        SimpleNamespace(config={}, metrics={"timestamp": 2, "training_iteration": 0}),
        SimpleNamespace(config=None, metrics={"timestamp": 3, "failed": "killed"}),
        SimpleNamespace(config={"n_estimators": 40000}, metrics={}),  # never reported: not a trial here
    ]
    study = _as_study(grid, tune, _distributions(tune.space), ws=None)  # type: ignore[arg-type]
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL]
    assert [t.params for t in study.trials] == [{"n_estimators": 5}, {}, {}]
    assert study.best_trial.params == {"n_estimators": 5} and study.best_value == 0.93
