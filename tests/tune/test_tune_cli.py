"""`gravityml plan` forecasts a search; `train` refuses one until the search driver exists."""

from __future__ import annotations

from pathlib import Path

import yaml

JOB = {
    "name": "tj", "task": "supervised", "data": {"source": "sklearn:iris", "target": "target"},
    "model": {"type": "random_forest"},
    "placement": {"estimate": {"hours": 0.01, "hardware": "cpu", "devices": 1}, "budget_usd": 1},
    "tune": {"metric": "test/accuracy", "trials": 8, "space": {"max_depth": {"int": [2, 8]}}},
}


def test_plan_prints_the_forecast_of_the_search_and_train_refuses_it(cli, workspace, tmp_path: Path) -> None:
    job = tmp_path / "tj.yaml"
    job.write_text(yaml.safe_dump(JOB))
    code, out, err = cli("plan", str(job), "--no-measure")
    assert code == 0, err
    assert "search: 8 trials x" in out and "(budget 1.0000 $; 8 trials fit)" in out
    code, _, err = cli("train", str(job))
    assert code == 2 and "tune: running a hyperparameter search is not built yet" in err
