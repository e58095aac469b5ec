"""Placement of Spark jobs: a Spark site is priced by its executors like any offer (no pyspark needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gravityml.data import parse_catalog
from gravityml.errors import CatalogError
from gravityml.placement import buy_vs_rent, demand_for, offer_table, plan
from gravityml.placement._hardware import hardware
from gravityml.spec import parse_spec

EXECUTORS = {"count": 4, "cores": 8, "memory_gb": 16, "hourly_usd": 0.5}


def lake(kind: str = "on_prem", **executors: object) -> dict:
    return {"kind": kind, "jurisdiction": "DE",
            "executor": {"spark": {"master": "spark://10.0.3.10:7077", "executors": {**EXECUTORS, **executors}}}}


def cloud(hourly: float = 0.2) -> dict:
    return {"kind": "cloud", "jurisdiction": "DE", "egress_usd_per_gb": 0.09, "offers": [
        {"name": "c8", "accelerator": "cpu", "per_node": 8, "nodes": 10, "cloud": {"on_demand_hourly_usd": hourly}}]}


def catalog(policies: list | None = None, **sites: dict) -> dict:
    return {"include_local": False, "sites": sites, "policies": policies or [],
            "datasets": {"events": {"uri": "/lake/events.parquet", "site": "lake", "size_gb": 500, "tags": ["lake"]}}}


def job(model: str = "spark_gbt", **placement: object) -> dict:
    return {"name": "events", "task": "supervised", "data": {"source": "events", "target": "label"},
            "model": {"type": model},
            "placement": {"estimate": {"hours": 64, "hardware": "cpu", "devices": 1}, **placement}}


def planned(cat: dict, spec: dict):  # type: ignore[no-untyped-def]
    c = parse_catalog(cat)
    return plan(demand_for(parse_spec(spec), c), offer_table(c))


def test_a_spark_site_is_priced_by_its_executors_and_a_spark_job_takes_all_of_them() -> None:
    p = planned(catalog(lake=lake()), job())
    chosen = p.chosen
    assert p.status == "ok" and chosen is not None
    assert (chosen.site, chosen.offer, chosen.market, chosen.accelerator) == ("lake", "spark-executors", "owned", "cpu")
    # 64 core-hours of work on 4 executors x 8 cores: 2 h, at 4 x 0.5 $ per hour
    assert chosen.nodes == 4 and chosen.hourly_usd == pytest.approx(0.5)
    assert chosen.run_hours == pytest.approx(64 * hardware("cpu").tflops / (hardware("cpu").tflops * 32))
    assert chosen.compute_usd == pytest.approx(4 * 0.5 * 2.0) and chosen.total_usd == pytest.approx(4.0)
    offer = parse_catalog(catalog(lake=lake())).sites["lake"].offers[0]
    assert (offer.per_node, offer.nodes, offer.memory_gb) == (8, 4, 16)
    # the same executors priced per core-hour (8 x 0.0625 = 0.5 per executor-hour), and on a cloud site (metered)
    per_core = planned(catalog(lake=lake(hourly_usd=None, core_hourly_usd=0.0625)), job()).chosen
    assert per_core is not None and per_core.total_usd == pytest.approx(4.0)
    metered = planned(catalog(lake=lake("cloud")), job()).chosen
    assert metered is not None and metered.market == "on_demand" and metered.total_usd == pytest.approx(4.0)


def test_policies_and_budgets_apply_unchanged_and_data_homed_on_the_spark_site_is_trained_there() -> None:
    cheap = catalog(lake=lake(), aws=cloud(hourly=0.01))
    # without a policy the cost decides: 500 GB out of the lake cost 0 $ egress here, so the cheaper cloud wins
    assert planned(cheap, job()).chosen.site == "aws"  # type: ignore[union-attr]
    stays = catalog([{"name": "lake-stays", "tags": ["lake"], "may_copy": False}], lake=lake(), aws=cloud(hourly=0.01))
    p = planned(stays, job())
    assert p.chosen is not None and p.chosen.site == "lake" and p.chosen.offer == "spark-executors"
    assert "data may not leave its home site 'lake'" in (p.rejection_for_site("aws") or "")
    over = planned(stays, job(budget_usd=3.0))
    assert over.status == "over_budget" and over.chosen is not None and over.chosen.total_usd == pytest.approx(4.0)
    # a model type the Spark site cannot train is never placed there
    sk = planned(catalog(lake=lake(), aws=cloud()), job("logistic_regression"))
    assert sk.rejection_for_site("lake") == "engine: a Spark site runs Spark MLlib jobs only (model.type spark_*)"
    assert sk.chosen is not None and sk.chosen.site == "aws"
    # buy-vs-rent reads the on-prem executors' rate as their whole cost, all year
    result = buy_vs_rent(planned(catalog(lake=lake(), aws=cloud()), job()), runs_per_year=12)
    own = next(o for o in result.options if o.kind == "own")
    assert own.fixed_usd_per_year == pytest.approx(4 * 0.5 * 8760) and own.per_run_usd == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ({**lake(), "offers": [{"name": "w", "accelerator": "cpu", "owned": {"purchase_usd": 1, "power_kw": 1}}]},
         r"sites\.lake\.offers: a Spark site with executors: is priced by them.*remove sites\.lake\.offers"),
        (lake(core_hourly_usd=0.1), r"sites\.lake\.spark\.executors: .*give one price: hourly_usd .* or core_hourly_usd"),
        (lake(cores=0), r"sites\.lake\.spark\.executors\.cores"),
    ],
)
def test_a_spark_site_priced_twice_or_without_one_price_is_refused_with_its_path(site: dict, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(catalog(lake=site))


def test_gravityml_plan_shows_the_executors_row_chosen(cli, tmp_path: Path) -> None:
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump(catalog(
        [{"name": "lake-stays", "tags": ["lake"], "may_copy": False}], lake=lake(), aws=cloud(hourly=0.01))))
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job()))
    code, out, err = cli("plan", str(tmp_path / "job.yaml"), "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["status"] == "ok" and got["chosen"]["site"] == "lake" and got["chosen"]["offer"] == "spark-executors"
    assert got["chosen"]["nodes"] == 4 and got["chosen"]["total_usd"] == pytest.approx(4.0)


def test_the_example_clickstream_job_is_planned_on_the_example_data_lake(cli) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    code, out, err = cli("plan", str(examples / "clickstream.yaml"), "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["chosen"]["site"] == "dc-frankfurt-lake" and got["chosen"]["offer"] == "spark-executors"
    assert got["chosen"]["nodes"] == 16 and got["chosen"]["total_usd"] == pytest.approx(16 * 0.35 * 256 / 128)
    assert sum(c["rejected_by"] is None for c in got["candidates"]) == 1
