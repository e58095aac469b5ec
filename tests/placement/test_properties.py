"""Property tests over random catalogs and jobs (hypothesis): the planner's three promises."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gravityml.data import Catalog, in_jurisdiction
from gravityml.placement import Demand, offer_table, plan

COUNTRIES = ["DE", "FR", "IE", "US", "JP"]
CERTS = ["pci-dss", "iso27001", "hipaa"]
TAGS = ["financial", "pii", "health"]
ACCELERATORS = ["cpu", "a100", "h100", "t4"]


@st.composite
def offers(draw: st.DrawFn, kind: str, index: int) -> dict:
    nodes = draw(st.integers(1, 4))
    offer = {
        "name": f"o{index}",
        "accelerator": draw(st.sampled_from(ACCELERATORS)),
        "per_node": draw(st.integers(1, 8)),
        "nodes": nodes,
        "nodes_available": draw(st.integers(0, nodes)),
        "queue_wait_hours": draw(st.floats(0, 48)),
        "provisioning_hours": draw(st.floats(0, 1)),
    }
    if kind == "cloud":
        price = draw(st.floats(0.1, 100))
        spot = draw(st.none() | st.floats(0.05, 1.0))
        offer["cloud"] = {"on_demand_hourly_usd": price, "spot_hourly_usd": None if spot is None else price * spot}
    else:
        offer["owned"] = {
            "purchase_usd": draw(st.floats(1_000, 400_000)),
            "lifetime_years": draw(st.floats(1, 8)),
            "utilisation": draw(st.floats(0.1, 1.0)),
            "power_kw": draw(st.floats(0, 10)),
            "usd_per_kwh": draw(st.floats(0, 0.5)),
            "pue": draw(st.floats(1.0, 2.0)),
            "operations_usd_per_year": draw(st.floats(0, 20_000)),
        }
    return offer


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    n = draw(st.integers(1, 6))
    sites = {}
    for i in range(n):
        kind = draw(st.sampled_from(["on_prem", "cloud"]))
        sites[f"s{i}"] = {
            "kind": kind,
            "jurisdiction": draw(st.sampled_from(COUNTRIES)),
            "certifications": draw(st.lists(st.sampled_from(CERTS), unique=True)),
            "egress_usd_per_gb": draw(st.floats(0, 0.2)),
            "storage_usd_per_gb_month": draw(st.floats(0, 0.05)),
            "bandwidth_gbps": {"default": draw(st.floats(0.1, 100))},
            "offers": [draw(offers(kind, j)) for j in range(draw(st.integers(1, 3)))],
        }
    policies = [
        {
            "name": f"p{k}",
            "tags": draw(st.lists(st.sampled_from(TAGS), min_size=1, unique=True)),
            "site_kinds": draw(st.none() | st.lists(st.sampled_from(["on_prem", "cloud"]), min_size=1, unique=True)),
            "jurisdictions": draw(st.none() | st.lists(st.sampled_from([*COUNTRIES, "EU", "EEA"]), min_size=1, unique=True)),
            "certifications": draw(st.lists(st.sampled_from(CERTS), unique=True, max_size=2)),
            "may_copy": draw(st.booleans()),
        }
        for k in range(draw(st.integers(0, 3)))
    ]
    home = draw(st.sampled_from(sorted(sites)))
    datasets = {"d": {"uri": "s3://bucket/d", "site": home, "size_gb": draw(st.floats(0, 5000)),
                      "tags": draw(st.lists(st.sampled_from(TAGS), unique=True))}}
    return Catalog.model_validate({"sites": sites, "policies": policies, "datasets": datasets,
                                   "include_local": draw(st.booleans())})


@st.composite
def jobs(draw: st.DrawFn, catalog: Catalog) -> Demand:
    ds = catalog.datasets["d"]
    return Demand(
        job="j",
        experiment="e",
        work_tflop_hours=draw(st.floats(0.001, 10_000)),
        basis="drawn",
        devices=draw(st.integers(1, 16)),
        cpu_only=draw(st.booleans()),
        dataset="d",
        home_site=ds.site,
        size_gb=ds.size_gb or 0.0,
        tags=tuple(ds.tags),
        objective=draw(st.sampled_from(["cost", "time"])),
        budget_usd=draw(st.none() | st.floats(0.01, 10_000)),
        deadline_hours=draw(st.none() | st.floats(0.1, 200)),
        site=draw(st.none() | st.sampled_from(sorted(catalog.sites))),
        spot=draw(st.booleans()),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Catalog, Demand]:
    catalog = draw(catalogs())
    return catalog, draw(jobs(catalog))


def policy_allows(catalog: Catalog, demand: Demand, site_name: str) -> bool:
    """The policies, checked the plain way (independently of the planner's vectorised filter)."""
    site = catalog.sites[site_name]
    for policy in catalog.policies:
        if not set(policy.tags) & set(demand.tags):
            continue
        if policy.site_kinds is not None and site.kind not in policy.site_kinds:
            return False
        if policy.jurisdictions is not None and not in_jurisdiction(site.jurisdiction, policy.jurisdictions):
            return False
        if not set(policy.certifications) <= set(site.certifications):
            return False
        if not policy.may_copy and site_name != demand.home_site:
            return False
    return True


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cases())
def test_no_plan_places_a_job_where_its_data_policy_forbids(case: tuple[Catalog, Demand]) -> None:
    catalog, demand = case
    p = plan(demand, offer_table(catalog))
    for c in p.candidates:
        if c.rejected_by is None:
            assert policy_allows(catalog, demand, c.site), (c, catalog.policies)
    if p.chosen is not None:
        assert policy_allows(catalog, demand, p.chosen.site)
        assert demand.site is None or p.chosen.site == demand.site
    elif any(policy_allows(catalog, demand, s) for s in catalog.sites):
        # nothing chosen although a site is allowed: hardware, pinning or spot must be why
        assert all(c.rejected_by for c in p.candidates)


@SETTINGS
@given(cases(), st.data())
def test_a_plan_never_exceeds_the_budget_or_deadline_it_reports_as_met(
    case: tuple[Catalog, Demand], data: st.DataObject
) -> None:
    catalog, demand = case
    table = offer_table(catalog)
    free = plan(demand.evolve(budget_usd=None, deadline_hours=None), table)
    if free.allowed.any():
        # Limits near the candidates' own costs and times, so that both sides of each limit occur.
        rows = np.flatnonzero(free.allowed)
        row = data.draw(st.sampled_from(rows.tolist()))
        demand = demand.evolve(
            budget_usd=data.draw(st.floats(0.5, 1.5).map(lambda f: f * float(free.total_usd[row]) + 1e-9)),
            deadline_hours=data.draw(st.floats(0.5, 1.5).map(lambda f: f * float(free.finish_hours[row]) + 1e-9)),
        )
    p = plan(demand, table)
    for c in p.candidates:
        if c.meets_budget and demand.budget_usd is not None:
            assert c.total_usd <= demand.budget_usd
        if c.meets_deadline and demand.deadline_hours is not None:
            assert c.finish_hours <= demand.deadline_hours
    if p.status == "ok":
        chosen = p.chosen
        assert chosen is not None and chosen.meets_budget and chosen.meets_deadline
    if p.status == "over_budget":
        allowed = [c for c in p.candidates if c.allowed]
        assert all(c.total_usd > demand.budget_usd for c in allowed)  # type: ignore[operator]


@SETTINGS
@given(cases(), st.data())
def test_cost_never_decreases_when_a_price_rises(case: tuple[Catalog, Demand], data: st.DataObject) -> None:
    catalog, demand = case
    table = offer_table(catalog)
    row = data.draw(st.integers(0, len(table) - 1))
    factor = data.draw(st.floats(1.0, 10.0))
    prices = table.row_hourly_usd.copy()
    prices[row] *= factor
    before = plan(demand, table)
    after = plan(demand, table.with_hourly_usd(prices))
    assert np.all(after.total_usd >= before.total_usd - 1e-9)
    # Without a budget the feasible set does not depend on prices, so the cheapest choice can only rise.
    unbudgeted = demand.evolve(budget_usd=None, objective="cost")
    b, a = plan(unbudgeted, table), plan(unbudgeted, table.with_hourly_usd(prices))
    if b.chosen is not None:
        assert a.chosen is not None and a.chosen.total_usd >= b.chosen.total_usd - 1e-9
