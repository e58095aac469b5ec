"""`gravityml plan`, `buy-vs-rent` and `costs` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_plan_prints_the_table_with_the_chosen_row_the_rejections_and_why(cli) -> None:
    code, out, err = cli("plan", str(EXAMPLES / "fraud.yaml"))
    assert code == 0, err
    chosen = [line for line in out.splitlines() if line.startswith("│ *")]
    assert len(chosen) == 1 and "dc-frankfurt" in chosen[0] and "cpu-32" in chosen[0]
    assert "rejected by policy 'financial-data-stays-home'" in out
    assert "Chosen: dc-frankfurt (on_prem, DE)" in out and "would cost less" in out


def test_plan_json_keeps_every_candidate_and_the_png_is_written(cli, tmp_path: Path) -> None:
    png = tmp_path / "plan.png"
    code, out, err = cli("plan", str(EXAMPLES / "forecast.yaml"), "--json", "--png", str(png))
    assert code == 0, err
    plan = json.loads(out)
    assert plan["status"] == "ok" and plan["chosen"]["site"] == "aws-us-east-1"
    assert len(plan["candidates"]) == 19  # 18 offer rows, and the data lake's Spark executors (rejected: a GPU job)
    assert sum(c["rejected_by"] is None for c in plan["candidates"]) == 7
    assert plan["estimate_basis"].startswith("placement.estimate: 6 h on 8 x a100")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_plan_without_an_estimate_measures_a_calibration_run_here(cli, tmp_path: Path, write_spec) -> None:
    (tmp_path / "gravityml.yaml").write_text((EXAMPLES / "gravityml.yaml").read_text())
    job = write_spec(tmp_path / "iris.yaml")
    code, out, err = cli("plan", str(job), "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["estimate_basis"].startswith("measured here: ") and "of 150 rows" in plan["estimate_basis"]
    # this machine is dc-frankfurt in the example catalog: the data (sklearn's) is here, so it calibrates here
    allowed = [c["total_usd"] for c in plan["candidates"] if c["rejected_by"] is None]
    assert plan["work_tflop_hours"] > 0 and plan["chosen"]["total_usd"] == min(allowed)


def test_buy_vs_rent_recommends_renting_occasionally_and_buying_daily(cli, tmp_path: Path) -> None:
    png = tmp_path / "bvr.png"
    answers = {}
    for runs in ("4", "365"):
        code, out, err = cli("buy-vs-rent", str(EXAMPLES / "forecast.yaml"), "-n", runs, "--json", "--png", str(png))
        assert code == 0, err
        answers[runs] = json.loads(out)
    assert answers["4"]["recommendation"].startswith("rent")
    assert answers["365"]["recommendation"].startswith("buy")
    assert answers["4"]["break_even_runs_per_year"] == answers["365"]["break_even_runs_per_year"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    code, out, _ = cli("buy-vs-rent", str(EXAMPLES / "forecast.yaml"))
    assert code == 0 and "break-even" in out and "recommendation: buy" in out  # runs_per_year: 365 in the spec


def test_user_errors_are_one_line_and_exit_2(cli, tmp_path: Path, write_spec) -> None:
    bad = {"sites": {"dc": {"kind": "on_prem", "jurisdiction": "DE", "offers": [{"name": "x", "accelerator": "cpu"}]}}}
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump(bad))
    job = write_spec(tmp_path / "iris.yaml")
    code, _, err = cli("plan", str(job))
    assert code == 2 and "sites.dc.offers.0: offers of on_prem sites are priced with 'owned:' only" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("plan", str(EXAMPLES / "fraud.yaml"), "--site", "mars")
    assert code == 2 and "site 'mars' is not in the catalog" in err and "dc-frankfurt" in err
    code, _, err = cli("buy-vs-rent", str(EXAMPLES / "fraud.yaml"))
    assert code == 2 and "placement.runs_per_year" in err
    code, out, _ = cli("costs")
    assert code == 0 and "no costs recorded yet" in out
