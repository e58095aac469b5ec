"""Enforcement and metering on real runs: policy refusals, budgets, lineage, the ledger, resume."""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

CATALOG = {
    "sites": {
        "vault": {  # this machine is in the vault
            "kind": "on_prem", "jurisdiction": "DE", "certifications": ["pci-dss"], "executor": "local",
            "offers": [{"name": "cpu-8", "accelerator": "cpu", "per_node": 8,
                        "owned": {"purchase_usd": 20000, "lifetime_years": 4, "utilisation": 0.5, "power_kw": 0.4}}],
        },
        "cloud-eu": {
            "kind": "cloud", "jurisdiction": "IE", "egress_usd_per_gb": 0.09,
            "offers": [{"name": "c8", "accelerator": "cpu", "per_node": 8, "cloud": {"on_demand_hourly_usd": 0.5}}],
        },
        "burst": {  # absurdly expensive, so that a second of metering crosses a small cap
            "kind": "cloud", "jurisdiction": "IE",
            "offers": [{"name": "pricey", "accelerator": "cpu", "per_node": 8,
                        "cloud": {"on_demand_hourly_usd": 3600.0}}],
        },
    },
    "datasets": {"cards": {"uri": "sklearn:iris", "site": "vault", "tags": ["financial"]}},
    "policies": [{"name": "fin-on-prem", "tags": ["financial"], "site_kinds": ["on_prem"],
                  "certifications": ["pci-dss"], "may_copy": False}],
    "budgets": {"iris": {"usd": 10}},
}
ESTIMATE = {"hours": 0.5, "hardware": "cpu", "devices": 8}


@pytest.fixture()
def job(tmp_path: Path, write_spec):
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump(CATALOG))
    return write_spec(tmp_path / "iris.yaml", data={"source": "cards"}, placement={"estimate": ESTIMATE})


def ledger(workspace) -> list[dict]:
    path = workspace.ledger_path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def runs(workspace) -> list:
    exp = workspace.client.get_experiment_by_name("iris")
    return [] if exp is None else workspace.client.search_runs([exp.experiment_id])


@pytest.mark.parametrize("flags", [[], ["--resume"]])
def test_a_site_that_policy_forbids_is_refused_whatever_the_flags(cli, workspace, job: Path, flags) -> None:
    code, _, err = cli("train", str(job), "--site", "cloud-eu", *flags)
    assert code == 2
    assert "site 'cloud-eu' is refused for dataset 'cards' (tags ['financial'])" in err
    assert "policy 'fin-on-prem'" in err and "allowed: ['vault']" in err
    assert runs(workspace) == [] and ledger(workspace) == []


def test_placement_and_forecast_are_recorded_on_the_run_the_version_and_the_ledger(cli, workspace, job) -> None:
    from gravityml.execution import plan_job

    forecast = plan_job(job, measure=False).chosen
    assert forecast is not None and forecast.site == "vault"
    code, out, err = cli("train", str(job))
    assert code == 0, err
    assert "placement vault (DE, cpu-8)" in out
    (run,) = runs(workspace)
    (version,) = workspace.client.search_model_versions("name = 'iris'")
    for tags in (run.data.tags, version.tags):
        assert tags["gravityml.site"] == "vault"
        assert tags["gravityml.jurisdiction"] == "DE"
        assert tags["gravityml.offer"] == "cpu-8"
        assert float(tags["gravityml.forecast_usd"]) == pytest.approx(forecast.total_usd, rel=1e-3)
    assert run.data.metrics["cost/forecast_usd"] == pytest.approx(forecast.total_usd)
    assert 0 < run.data.metrics["cost/metered_usd"] < forecast.total_usd  # seconds here, not half an hour
    kinds = [(e["kind"], e["site"], e["experiment"]) for e in ledger(workspace)]
    assert kinds == [("forecast", "vault", "iris"), ("metered", "vault", "iris")]
    code, out, _ = cli("costs", "--json", "--by", "site")
    (row,) = json.loads(out)
    assert row["site"] == "vault" and row["runs"] == 1
    assert row["forecast_usd"] == pytest.approx(forecast.total_usd)


def test_an_experiment_over_its_budget_is_refused_before_it_spends(cli, workspace, job) -> None:
    from gravityml.placement import Entry, ledger_append

    ledger_append(workspace.ledger_path, Entry("metered", "old", "iris", "iris", "vault", "cpu-8", 9.5))
    before = workspace.ledger_path.read_text()
    code, _, err = cli("train", str(job))
    assert code == 2
    assert "over what remains of its budget, 0.50 $ (experiment 'iris': 10 budget - 9.50 spent)" in err
    assert runs(workspace) == [] and workspace.ledger_path.read_text() == before


LOOP_STEPS = 30
seen: list[int] = []


def _loop_trainer(ctx):
    """A paradigm with an epoch loop: checkpoints each step, polls should_stop, stops cleanly."""
    from gravityml.paradigms import TrainResult
    from gravityml.paradigms.supervised import train as fit

    step_file = ctx.checkpoint_dir / "step"
    step = int(step_file.read_text()) if ctx.resume and step_file.exists() else 0
    seen.append(step)
    while step < LOOP_STEPS:
        time.sleep(0.05)
        step += 1
        step_file.write_text(str(step))
        if ctx.should_stop():
            return TrainResult(model=None, tags={"stopped_at": str(step)})  # type: ignore[arg-type]
    return fit(ctx)


def test_a_run_over_its_cap_stops_after_a_checkpoint_and_resumes_when_the_budget_is_raised(
    cli, workspace, tmp_path, write_spec, monkeypatch
) -> None:
    from gravityml.paradigms import TRAINERS

    module = types.ModuleType("gravityml_test_loop")
    module.train = _loop_trainer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gravityml_test_loop", module)
    monkeypatch.setitem(TRAINERS, ("supervised", "sklearn"), "gravityml_test_loop:train")
    # This machine stands in for the pricey site here (executor: local), so the run is metered at its rate.
    sites = {name: {k: v for k, v in site.items() if k != "executor"} for name, site in CATALOG["sites"].items()}
    sites["burst"]["executor"] = "local"
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump({**CATALOG, "sites": sites, "budgets": {},
                                                             "datasets": {}}))
    # 3600 $/h is 1 $/s: a 0.36 $ forecast fits the 0.5 $ cap, the loop's 1.5 s does not.
    estimate = {"hours": 0.0001, "hardware": "cpu", "devices": 8}
    small = write_spec(tmp_path / "iris.yaml", placement={"budget_usd": 0.5, "estimate": estimate})
    seen.clear()
    code, _, err = cli("train", str(small), "--site", "burst")
    assert code == 2
    assert "stopped for budget after its last checkpoint" in err and "--resume" in err
    (run,) = runs(workspace)
    assert run.data.tags["gravityml.stopped_for_budget"] == "true" and run.info.status == "FAILED"
    assert workspace.client.search_model_versions("name = 'iris'") == []
    stopped = [e for e in ledger(workspace) if e["kind"] == "metered"]
    assert stopped[0]["status"] == "stopped_for_budget" and stopped[0]["usd"] > 0.5
    checkpoints = list(workspace.checkpoints_dir.glob("iris-*/step"))
    stopped_at = int(checkpoints[0].read_text())
    assert len(checkpoints) == 1 and 0 < stopped_at < LOOP_STEPS

    raised = write_spec(tmp_path / "iris.yaml", placement={"budget_usd": 100, "estimate": estimate})
    code, out, err = cli("train", str(raised), "--site", "burst", "--resume")
    assert code == 0, err
    assert seen == [0, stopped_at]  # the second run started from the checkpoint, not from scratch
    (again,) = runs(workspace)
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags["gravityml.stopped_for_budget"] == "resumed"
    (version,) = workspace.client.search_model_versions("name = 'iris'")
    assert version.tags["gravityml.site"] == "burst"
