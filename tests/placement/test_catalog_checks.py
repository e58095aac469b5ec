"""Catalog checks the planner needs, and what `executor` means (issue 12, points 2, 6 and 9)."""

from __future__ import annotations

import pytest

from gravityml.data import parse_catalog
from gravityml.errors import CatalogError
from gravityml.placement import buy_vs_rent, demand_for, offer_table, plan


def owned(name: str = "cpu-8", **extra: object) -> dict:
    return {"name": name, "accelerator": "cpu", "per_node": 8,
            "owned": {"purchase_usd": 20000, "lifetime_years": 4, "utilisation": 0.5, "power_kw": 0.4}, **extra}


def site(**extra: object) -> dict:
    return {"kind": "on_prem", "jurisdiction": "DE", "offers": [owned()], **extra}


def cloud(**extra: object) -> dict:
    return {"kind": "cloud", "jurisdiction": "IE", "egress_usd_per_gb": 0.09,
            "offers": [{"name": "c8", "accelerator": "cpu", "per_node": 8, "cloud": {"on_demand_hourly_usd": 0.5}}],
            **extra}


def test_a_queue_wait_without_nodes_available_is_an_error_that_says_the_wait_would_never_count() -> None:
    with pytest.raises(CatalogError, match=r"sites\.dc\.offers\.0\.queue_wait_hours: .*would never count.*"
                                           r"add nodes_available"):
        parse_catalog({"sites": {"dc": site(offers=[owned(queue_wait_hours=30)])}})
    busy = parse_catalog({"sites": {"dc": site(offers=[owned(queue_wait_hours=30, nodes_available=0)])}})
    assert busy.sites["dc"].offers[0].queue_wait_hours == 30


def test_certifications_are_compared_case_insensitively() -> None:
    catalog = parse_catalog({
        "sites": {"dc": site(certifications=["PCI-DSS"]), "other": site(certifications=["iso27001"])},
        "datasets": {"cards": {"uri": "sklearn:iris", "site": "dc", "tags": ["financial"]}},
        "policies": [{"name": "fin", "tags": ["financial"], "certifications": ["pci-dss"]}],
    })
    from gravityml.spec import parse_spec

    spec = parse_spec({"name": "iris", "task": "supervised", "data": {"source": "cards", "target": "target"},
                       "model": {"type": "logistic_regression"},
                       "placement": {"estimate": {"hours": 1, "hardware": "cpu", "devices": 8}}})
    p = plan(demand_for(spec, catalog), offer_table(catalog))
    assert p.rejection_for_site("dc") is None  # "PCI-DSS" holds "pci-dss"
    assert "certification 'pci-dss'" in (p.rejection_for_site("other") or "")


def test_a_bloc_is_not_a_sites_jurisdiction() -> None:
    with pytest.raises(CatalogError, match=r"sites\.dc\.jurisdiction: 'EU' is a bloc; a site is in one country"):
        parse_catalog({"sites": {"dc": site(jurisdiction="EU")}})
    assert parse_catalog({"sites": {"dc": site(jurisdiction="de")}}).sites["dc"].jurisdiction == "DE"


def test_executor_local_means_this_machine_is_there_so_at_most_one_site_says_it() -> None:
    with pytest.raises(CatalogError, match=r"'executor: local' means this machine is at that site.*"
                                           r"got: \['a', 'b'\]"):
        parse_catalog({"sites": {"a": site(executor="local"), "b": site(executor="local")}})
    one = parse_catalog({"sites": {"a": site(executor="local"), "b": cloud()}})
    assert one.here == "a" and "local" not in one.sites  # this machine is site a, not a site of its own
    assert parse_catalog({"sites": {"b": cloud()}}).here == "local"  # none says so: this machine is added
    assert not one.sites["b"].runnable and one.sites["a"].runnable
    with pytest.raises(CatalogError, match=r"sites\.b\.executor: an executor is 'local', the address"):
        parse_catalog({"sites": {"b": cloud(executor="10.0.0.5:8265")}})
    with pytest.raises(CatalogError, match=r"SkyPilot is a launcher.*write `launcher: skypilot` instead"):
        parse_catalog({"sites": {"b": cloud(executor="skypilot")}})


def test_a_site_without_an_executor_is_planned_and_priced_but_train_refuses_with_one_line(
    cli, workspace, tmp_path, write_spec
) -> None:
    import yaml

    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump(
        {"include_local": False, "sites": {"far": cloud()}}))
    job = write_spec(tmp_path / "iris.yaml", placement={"estimate": {"hours": 0.5, "hardware": "cpu", "devices": 8}})
    code, out, err = cli("plan", str(job), "--no-measure")
    assert code == 0 and "far" in out
    code, _, err = cli("train", str(job))
    assert code == 2 and err.count("\n") == 1
    assert "site 'far', which has no executor: it can be planned and priced, not run on" in err
    assert "executor: http://HOST:8265" in err and "--dry-run" in err
    assert not workspace.client.search_experiments(filter_string="name = 'iris'")  # nothing recorded
    code, out, _ = cli("train", str(job), "--dry-run")
    assert code == 0 and "placement far" in out and "nothing recorded" in out


def test_a_dataset_of_unknown_size_is_refused_off_its_home_site_but_planned_at_home(tmp_path) -> None:
    from gravityml.spec import parse_spec

    catalog = parse_catalog({
        "sites": {"home": site(), "away": cloud()},
        "datasets": {"big": {"uri": str(tmp_path / "not-here.csv"), "site": "home"},
                     "sized": {"uri": str(tmp_path / "not-here.csv"), "site": "home", "size_gb": 5}},
    })

    def planned(source: str):  # type: ignore[no-untyped-def]
        spec = parse_spec({"name": "iris", "task": "supervised", "data": {"source": source, "target": "target"},
                           "model": {"type": "logistic_regression"},
                           "placement": {"estimate": {"hours": 1, "hardware": "cpu", "devices": 8}}})
        return plan(demand_for(spec, catalog), offer_table(catalog))

    unknown = planned("big")
    assert not unknown.demand.size_known
    assert "has no size_gb and its store does not say" in (unknown.rejection_for_site("away") or "")
    assert unknown.rejection_for_site("home") is None
    sized = planned("sized")
    away = next(c for c in sized.candidates if c.site == "away")
    assert away.allowed and away.egress_usd == pytest.approx(5 * 0.0)  # home's egress price is 0 here
    assert sized.demand.size_gb == 5


def test_buy_vs_rent_never_offers_to_buy_this_machine(workspace, tmp_path) -> None:
    from gravityml.execution import plan_job
    from gravityml.spec import parse_spec

    catalog = parse_catalog({"sites": {"far": cloud()}})  # plus this machine, free
    spec = parse_spec({"name": "iris", "task": "supervised", "data": {"source": "sklearn:iris", "target": "target"},
                       "model": {"type": "logistic_regression"},
                       "placement": {"estimate": {"hours": 1, "hardware": "cpu", "devices": 1}}})
    result = buy_vs_rent(plan_job(spec, catalog=catalog, measure=False), 365)
    assert all(o.site != "local" for o in result.options)
    assert not result.recommendation.startswith("buy")

