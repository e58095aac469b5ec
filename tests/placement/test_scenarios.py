"""The guide's scenarios, on the example catalog (examples/gravityml.yaml) and example jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gravityml.data import load_catalog
from gravityml.execution import enforce, plan_job
from gravityml.placement import buy_vs_rent, explain, plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CATALOG = EXAMPLES / "gravityml.yaml"


def job(tmp_path: Path, name: str, **changes: object) -> Path:
    """An example job with some keys replaced, written beside a copy of the example catalog."""
    document = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_regulated_financial_data_is_trained_on_prem_although_a_cloud_region_is_cheaper(workspace) -> None:
    p = plan_job(EXAMPLES / "fraud.yaml", measure=False)
    assert p.demand.tags == ("financial", "pii") and p.demand.home_site == "dc-frankfurt"
    assert p.status == "ok" and p.chosen is not None
    assert p.chosen.site == "dc-frankfurt"
    cloud = [c for c in p.candidates if c.site.startswith("aws-") and c.offer == "c6i.16xlarge" and c.market == "on_demand"]
    cheaper = [c for c in cloud if c.total_usd < p.chosen.total_usd]
    assert cheaper, "the example should have a cloud offer cheaper than on-prem"
    assert all("financial-data-stays-home" in (c.rejected_by or "") for c in cheaper)
    text = explain(p)
    assert "dc-frankfurt" in text and "would cost less" in text and "financial-data-stays-home" in text


def test_data_already_in_a_cloud_region_is_trained_in_that_region(workspace) -> None:
    p = plan_job(EXAMPLES / "sensors.yaml", measure=False)
    assert p.demand.home_site == "aws-eu-central-1" and p.demand.size_gb == 2000
    assert p.chosen is not None and p.chosen.site == "aws-eu-central-1"
    assert p.chosen.egress_usd == 0 and p.chosen.transfer_hours == 0
    same_offer_elsewhere = [c for c in p.candidates if c.offer == p.chosen.offer and c.site != p.chosen.site
                            and c.market == p.chosen.market]
    # the same machine in another region is cheaper per hour, but moving 2 TB costs more than it saves
    assert same_offer_elsewhere and all(c.hourly_usd < p.chosen.hourly_usd for c in same_offer_elsewhere)
    assert all(c.egress_usd == pytest.approx(2000 * 0.09) for c in same_offer_elsewhere)
    assert all(c.total_usd > p.chosen.total_usd for c in same_offer_elsewhere)


def test_occasional_training_rents_and_steady_daily_training_buys(workspace) -> None:
    p = plan_job(EXAMPLES / "forecast.yaml", measure=False)
    occasional, daily = buy_vs_rent(p, 4), buy_vs_rent(p, 365)
    assert occasional.recommendation.startswith("rent")
    assert daily.recommendation.startswith("buy dc-frankfurt/a100x8")
    assert occasional.break_even_runs == daily.break_even_runs
    assert 4 < daily.break_even_runs < 365
    # at break-even the two yearly costs meet
    even = daily.break_even_runs
    assert daily.best_rent.yearly_usd(even) == pytest.approx(daily.best_own.yearly_usd(even), rel=1e-6)
    # owning: capital over lifetime + operations, per node, as the catalog states them
    owned = load_catalog(CATALOG).sites["dc-frankfurt"].offer("a100x8").owned
    assert daily.best_own.fixed_usd_per_year == pytest.approx(150_000 / 4 + 10_000)
    assert owned.hourly_usd == pytest.approx((150_000 / 4 + 10_000) / (8760 * 0.7) + 6.5 * 1.5 * 0.25)


def test_busy_on_prem_bursts_unrestricted_jobs_to_the_cloud(workspace) -> None:
    p = plan_job(EXAMPLES / "forecast.yaml", measure=False)
    on_prem = next(c for c in p.candidates if c.site == "dc-frankfurt" and c.offer == "a100x8")
    assert on_prem.allowed and on_prem.wait_hours == 30 and not on_prem.meets_deadline
    assert on_prem.total_usd < p.chosen.total_usd  # cheapest, but it would be late
    assert p.status == "ok" and p.chosen.site.startswith("aws-") and p.chosen.meets_deadline
    # The same job on restricted data waits on-prem, and the plan says it will be late and why.
    demand = p.demand.evolve(dataset="transactions", home_site="dc-frankfurt", tags=("financial",), size_gb=0.1)
    late = plan(demand, p.table)
    assert late.status == "misses_deadline"
    assert late.chosen.site == "dc-frankfurt" and late.chosen.offer == "a100x8"
    text = explain(late)
    assert "miss the deadline of 12 h" in text and "waits 30 h" in text and "financial-data-stays-home" in text


def test_an_experiment_over_budget_is_refused_before_it_spends(workspace, tmp_path: Path) -> None:
    from gravityml.errors import BudgetError

    spec = job(tmp_path, "forecast", placement={"budget_usd": 50, "deadline_hours": 12, "estimate":
                                                 {"hours": 6, "hardware": "a100", "devices": 8}})
    p = plan_job(spec, catalog=CATALOG, measure=False)
    assert p.status == "over_budget"
    with pytest.raises(BudgetError, match=r"forecast to cost 61\.10 \$ at best .* over what remains of its budget, 50\.00"):
        enforce(p)
