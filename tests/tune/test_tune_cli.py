"""`gravityml plan` forecasts a search (tests/tune/test_search.py runs them)."""

from __future__ import annotations

from pathlib import Path

import yaml

JOB = {
    "name": "tj", "task": "supervised", "data": {"source": "sklearn:iris", "target": "target"},
    "model": {"type": "random_forest"},
    "placement": {"estimate": {"hours": 0.01, "hardware": "cpu", "devices": 1}, "budget_usd": 1},
    "tune": {"metric": "test/accuracy", "trials": 8, "space": {"max_depth": {"int": [2, 8]}}},
}


def test_plan_prints_the_forecast_of_the_search(cli, workspace, tmp_path: Path) -> None:
    job = tmp_path / "tj.yaml"
    job.write_text(yaml.safe_dump(JOB))
    code, out, err = cli("plan", str(job), "--no-measure")
    assert code == 0, err
    assert "search: 8 trials x" in out and "(budget 1.0000 $; 8 trials fit)" in out
