"""The search driver (issue 13, point 2) in this process: child runs, the best registered once, ASHA,
the budget refused up front, capped to what it covers, and metered while it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

IRIS = {"source": "sklearn:iris", "target": "target", "split": {"test": 0.2, "validation": 0.2, "seed": 3}}


def _job(tmp_path: Path, name: str, **over: object) -> Path:
    doc = {"name": name, "task": "supervised", "data": IRIS, "model": {"type": "random_forest"}, **over}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _runs(workspace, name: str) -> tuple[object, list]:  # type: ignore[no-untyped-def]
    exp = workspace.client.get_experiment_by_name(name)
    runs = workspace.client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    return parents[0], children


def _ledger(workspace) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(line) for line in workspace.ledger_path.read_text().splitlines()]


def test_every_trial_is_a_child_run_and_the_best_is_registered_once_with_the_search_in_its_lineage(
    cli, workspace, tmp_path: Path,
) -> None:
    job = _job(tmp_path, "ts", tune={"metric": "test/accuracy", "trials": 6, "space": {
        "max_depth": {"int": [1, 6]}, "n_estimators": {"choice": [5, 20]}, "criterion": {"choice": ["gini", "entropy"]}}})
    code, out, err = cli("train", str(job))
    assert code == 0, err
    assert "search    best of trial" in out and "6 complete, 0 pruned, 0 failed" in out
    parent, children = _runs(workspace, "ts")
    assert len(children) == 6 and {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    for child in children:  # each trial's values are within the space and were what it trained with
        depth = int(child.data.params["trial.max_depth"])
        assert 1 <= depth <= 6 and child.data.params["trial.n_estimators"] in ("5", "20")
        assert child.info.status == "FINISHED" and child.data.tags["gravityml.trial_state"] == "complete"
    (version,) = workspace.client.search_model_versions("name = 'ts'")
    best = max(children, key=lambda c: c.data.metrics["test/accuracy"])
    assert workspace.client.get_run(version.run_id).data.metrics["test/accuracy"] == best.data.metrics["test/accuracy"]
    assert version.tags["gravityml.search_run_id"] == parent.info.run_id
    assert version.tags["gravityml.trials_complete"] == "6" and version.tags["gravityml.search"] == "optuna-tpe"
    trained_with = {k.removeprefix("trial."): v for k, v in workspace.client.get_run(version.run_id).data.params.items()
                    if k.startswith("trial.")}
    assert {k: str(v) for k, v in json.loads(version.tags["gravityml.best_params"]).items()} == trained_with
    assert parent.data.tags["gravityml.search_registered"] == f"ts/{version.version}"
    assert parent.data.metrics["test/accuracy"] == best.data.metrics["test/accuracy"]
    plots = [a.path for a in workspace.client.list_artifacts(parent.info.run_id, "plots")]
    assert plots == ["plots/search.png"]
    # The registered model predicts like any other.
    code, out, err = cli("models", "show", "ts")
    assert code == 0, err


def test_asha_prunes_the_trials_that_trail_at_a_rung_and_says_on_what(cli, workspace, tmp_path: Path) -> None:
    # Under a budget (one it does not reach), so the trials run in the search's worker process: each epoch's
    # value reaches the search, ASHA prunes there, and the worker stops the trial at its next epoch.
    _catalog(tmp_path, 3.6)
    job = _job(tmp_path, "ta", model={"type": "mlp", "params": {"hidden": [16]}},
               placement={"budget_usd": 10.0, "estimate": {"hours": 0.001, "hardware": "cpu", "devices": 8}},
               train={"epochs": 9, "batch_size": 16, "seed": 3},
               tune={"metric": "test/accuracy", "trials": 6, "scheduler": "asha", "space": {
                   "lr": {"loguniform": [1.0e-5, 5.0e-2]}}})
    code, out, err = cli("train", str(job), "--site", "here")
    assert code == 0, err
    parent, children = _runs(workspace, "ta")
    assert len(children) == 6
    pruned = [c for c in children if c.data.tags["gravityml.trial_state"].startswith("pruned by ASHA")]
    complete = [c for c in children if c.data.tags["gravityml.trial_state"] == "complete"]
    assert pruned and complete and len(pruned) + len(complete) == 6
    epochs = {c.info.run_id: len(workspace.client.get_metric_history(c.info.run_id, "val/accuracy")) for c in children}
    assert all(epochs[c.info.run_id] < 9 for c in pruned) and all(epochs[c.info.run_id] == 9 for c in complete)
    assert parent.data.tags["gravityml.trials_pruned"] == str(len(pruned))
    assert parent.data.tags["gravityml.trials_in"].startswith("a worker process that the search kills")
    (version,) = workspace.client.search_model_versions("name = 'ta'")
    assert version.run_id in {c.info.run_id for c in complete}
    assert version.tags["gravityml.asha"] == "successive halving on val/accuracy per epoch"


#: A site priced so that metering is quick to see: 360 $/h is 0.1 $ a second; 3600 $/h, 1 $ a second.
def _catalog(tmp_path: Path, hourly: float) -> None:
    catalog = {"sites": {"here": {"kind": "cloud", "jurisdiction": "IE", "executor": "local", "offers": [
        {"name": "c8", "accelerator": "cpu", "per_node": 8, "cloud": {"on_demand_hourly_usd": hourly}}]}}}
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump(catalog))


def test_a_search_over_its_budget_is_refused_before_any_trial_and_capped_to_what_it_covers(
    cli, workspace, tmp_path: Path,
) -> None:
    _catalog(tmp_path, 36.0)
    tune = {"metric": "test/accuracy", "trials": 8, "space": {"max_depth": {"int": [1, 6]}}}
    # One trial is forecast at 0.01 h x 36 $/h = 0.36 $: 8 trials are 2.88 $, the budget covers 3.
    placement = {"budget_usd": 1.2, "estimate": {"hours": 0.01, "hardware": "cpu", "devices": 8}}
    job = _job(tmp_path, "tb", tune=tune, placement=placement)
    code, _, err = cli("train", str(job), "--site", "here")
    assert code == 2
    assert "search of 'tb' is forecast over its budget" in err and "3 trials fit" in err
    assert "tune.trials: 3" in err and "cap_to_budget" in err
    exp = workspace.client.get_experiment_by_name("tb")
    assert exp is None or not workspace.client.search_runs([exp.experiment_id])  # nothing ran, nothing recorded

    job = _job(tmp_path, "tb", tune={**tune, "cap_to_budget": True}, placement=placement)
    code, out, err = cli("train", str(job), "--site", "here")
    assert code == 0, err
    parent, children = _runs(workspace, "tb")
    assert len(children) == 3 and parent.data.tags["gravityml.stop_reason"] == "ran 3 of 3 trials"
    assert "cap_to_budget: running 3" in parent.data.tags["gravityml.search_forecast"]
    metered = [e for e in _ledger(workspace) if e["kind"] == "metered"]
    assert len(metered) == 1 and 0 < metered[0]["usd"] <= 1.2


def test_a_search_stops_when_its_metered_cost_would_cross_the_cap_and_registers_the_best_so_far(
    cli, workspace, tmp_path: Path,
) -> None:
    _catalog(tmp_path, 72.0)
    # The forecast (0.00072 $ a trial) fits; the metered cost (0.02 $ a second of wall clock) does not.
    placement = {"budget_usd": 0.4, "estimate": {"hours": 0.00001, "hardware": "cpu", "devices": 8}}
    job = _job(tmp_path, "tm", placement=placement,
               tune={"metric": "test/accuracy", "trials": 60, "space": {"max_depth": {"int": [1, 6]}}})
    code, out, err = cli("train", str(job), "--site", "here")
    assert code == 0, err
    parent, children = _runs(workspace, "tm")
    reason = parent.data.tags["gravityml.stop_reason"]
    assert reason.startswith("budget:") and 1 <= len(children) < 60, reason
    (version,) = workspace.client.search_model_versions("name = 'tm'")
    assert version.run_id in {c.info.run_id for c in children} and version.tags["gravityml.stop_reason"] == reason
    (metered,) = [e for e in _ledger(workspace) if e["kind"] == "metered"]
    assert 0 < metered["usd"] <= 0.4, metered  # never over the budget, whichever way it stopped
    assert parent.data.metrics["cost/metered_usd"] == pytest.approx(metered["usd"])


def test_a_trial_still_running_at_the_cap_is_killed_there_and_the_best_before_it_is_registered(
    cli, workspace, tmp_path: Path,
) -> None:
    _catalog(tmp_path, 72.0)
    # The random sampler (seed 6) draws 5, 5, then 40,000 trees: a fit that cannot stop itself and would take
    # far longer than the 20 s of the site's time that the 0.4 $ budget buys at 0.02 $ a second.
    placement = {"budget_usd": 0.4, "estimate": {"hours": 0.00001, "hardware": "cpu", "devices": 8}}
    job = _job(tmp_path, "tk", placement=placement,
               tune={"metric": "test/accuracy", "trials": 4, "search": "random", "seed": 6,
                     "space": {"n_estimators": {"choice": [5, 40000]}}})
    code, out, err = cli("train", str(job), "--site", "here")
    assert code == 0, err
    parent, children = _runs(workspace, "tk")
    reason = parent.data.tags["gravityml.stop_reason"]
    assert reason.startswith("budget: trial 2 was stopped when the metered cost reached the cap"), reason
    killed = [c for c in children if c.data.params["trial.n_estimators"] == "40000"]
    assert len(children) == 3 and len(killed) == 1 and killed[0].info.status == "KILLED", children
    assert killed[0].data.tags["gravityml.trial_state"] == "stopped for budget at the cap"
    (metered,) = [e for e in _ledger(workspace) if e["kind"] == "metered"]
    assert 0.3 < metered["usd"] <= 0.4 and metered["status"] == "stopped_for_budget", metered
    (version,) = workspace.client.search_model_versions("name = 'tk'")
    assert workspace.client.get_run(version.run_id).data.params["trial.n_estimators"] == "5"
    assert version.tags["gravityml.stop_reason"] == reason


@pytest.mark.parametrize("metric", ["test/nonsense"])
def test_a_metric_the_trials_do_not_report_is_one_line_naming_those_they_do(cli, workspace, tmp_path: Path,
                                                                            metric: str) -> None:
    job = _job(tmp_path, "tn", tune={"metric": metric, "trials": 3, "space": {"max_depth": {"int": [1, 3]}}})
    code, _, err = cli("train", str(job))
    assert code == 2
    assert "tune.metric: the trials report no finite 'test/nonsense'" in err and "test/accuracy" in err
    assert not workspace.client.search_model_versions("name = 'tn'")


def test_resume_continues_a_killed_search_with_the_trials_it_had_run(cli, workspace, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from gravityml.execution import _tune

    calls: list[int] = []
    real = _tune.train

    def killed_at_the_third(ctx):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third trial
        return real(ctx)

    monkeypatch.setattr(_tune, "train", killed_at_the_third)
    job = _job(tmp_path, "tr", tune={"metric": "test/accuracy", "trials": 4, "space": {"max_depth": {"int": [1, 6]}}})
    code, _, _ = cli("train", str(job))
    assert code != 0 and len(calls) == 3
    parent, children = _runs(workspace, "tr")
    assert parent.info.status == "KILLED" and len(children) == 3
    assert not workspace.client.search_model_versions("name = 'tr'")
    code, out, err = cli("train", str(job), "--resume")
    assert code == 0, err
    assert len(calls) == 4  # one more trial: 2 complete and the killed one count towards the 4
    again, children = _runs(workspace, "tr")
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert len(children) == 4 and again.data.tags["gravityml.trials_complete"] == "3"
    assert again.data.tags["gravityml.trials_failed"] == "1"
    assert len(workspace.client.search_model_versions("name = 'tr'")) == 1
