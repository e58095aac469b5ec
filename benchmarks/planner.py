"""Planner benchmark: 1,000 jobs against a catalog of 500 sites x 20 offers (10,000 offers).

Reports plans per second for gravityml's planner (every candidate kept, policies and hardware
filtered, cost and time estimated with numpy over all offer rows at once) and how the time per plan
grows with the catalog (50 ... 500 sites). The anchor, in the same run, is the plain-Python planner
one would write first: a loop over offers that checks each policy and computes each cost in turn.
It must choose the same offers (checked on every job it plans) and its time gives the ratio.

Catalogs and jobs are random with a fixed seed: sites on-prem or cloud in five countries, three
certifications, policies on three data tags, datasets of up to 5 TB at random home sites, budgets
and deadlines on some jobs.

Results: benchmarks/results/planner.json.

    .venv/bin/python benchmarks/planner.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gravityml.data import BLOCS, HOURS_PER_MONTH, Catalog  # noqa: E402
from gravityml.placement import HARDWARE, Demand, offer_table, plan  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "planner.json"
COUNTRIES = ["DE", "FR", "IE", "US", "JP"]
CERTS = ["pci-dss", "iso27001", "hipaa"]
TAGS = ["financial", "pii", "health"]
ACCELERATORS = ["cpu", "a100", "h100", "t4", "l4"]


def make_catalog(n_sites: int, offers_per_site: int, seed: int = 0) -> Catalog:
    rng = np.random.default_rng(seed)
    sites: dict[str, Any] = {}
    for i in range(n_sites):
        cloud = bool(rng.random() < 0.7)
        offers = []
        for j in range(offers_per_site):
            nodes = int(rng.integers(1, 16))
            offer: dict[str, Any] = {
                "name": f"o{j}",
                "accelerator": str(rng.choice(ACCELERATORS)),
                "per_node": int(rng.choice([1, 4, 8])),
                "nodes": nodes,
                "nodes_available": int(rng.integers(0, nodes + 1)),
                "queue_wait_hours": float(rng.uniform(0, 48)),
                "provisioning_hours": float(rng.uniform(0, 1)) if cloud else 0.0,
            }
            if cloud:
                offer["cloud"] = {"on_demand_hourly_usd": float(rng.uniform(0.5, 100))}
            else:
                offer["owned"] = {"purchase_usd": float(rng.uniform(5e3, 3e5)), "power_kw": float(rng.uniform(0.3, 8))}
            offers.append(offer)
        sites[f"site{i:03d}"] = {
            "kind": "cloud" if cloud else "on_prem",
            "jurisdiction": str(rng.choice(COUNTRIES)),
            "certifications": [c for c in CERTS if rng.random() < 0.5],
            "egress_usd_per_gb": float(rng.uniform(0, 0.12)),
            "storage_usd_per_gb_month": float(rng.uniform(0, 0.03)),
            "bandwidth_gbps": {"default": float(rng.uniform(1, 25))},
            "offers": offers,
        }
    names = sorted(sites)
    datasets = {
        f"d{k}": {"uri": f"s3://b/d{k}", "site": str(rng.choice(names)), "size_gb": float(rng.uniform(0, 5000)),
                  "tags": [t for t in TAGS if rng.random() < 0.3]}
        for k in range(50)
    }
    policies = [
        {"name": "financial", "tags": ["financial"], "site_kinds": ["on_prem"], "certifications": ["pci-dss"],
         "may_copy": False},
        {"name": "pii-eu", "tags": ["pii"], "jurisdictions": ["EEA"]},
        {"name": "health", "tags": ["health"], "certifications": ["hipaa"]},
    ]
    return Catalog.model_validate(
        {"sites": sites, "datasets": datasets, "policies": policies, "include_local": False}
    )


def make_jobs(catalog: Catalog, n: int, seed: int = 1) -> list[Demand]:
    rng = np.random.default_rng(seed)
    names = sorted(catalog.datasets)
    jobs = []
    for i in range(n):
        name = str(rng.choice(names))
        ds = catalog.datasets[name]
        jobs.append(Demand(
            job=f"j{i}", experiment="bench", work_tflop_hours=float(rng.uniform(1, 5000)), basis="random",
            devices=int(rng.choice([1, 2, 4, 8, 16])), cpu_only=bool(rng.random() < 0.3),
            dataset=name, home_site=ds.site, size_gb=ds.size_gb or 0.0, tags=tuple(ds.tags),
            objective=str(rng.choice(["cost", "time"])),
            budget_usd=float(rng.uniform(50, 5000)) if rng.random() < 0.5 else None,
            deadline_hours=float(rng.uniform(2, 72)) if rng.random() < 0.5 else None,
        ))
    return jobs


def naive_plan(demand: Demand, catalog: Catalog) -> tuple[str, str] | None:
    """The first planner one writes: one Python loop over offers, one check at a time."""
    best: tuple[tuple[float, ...], int, tuple[str, str]] | None = None
    tiers = {}
    row = 0
    for sname, site in catalog.sites.items():
        for offer in site.offers:
            row += 1
            ok = True
            for policy in catalog.policies:
                if not set(policy.tags) & set(demand.tags):
                    continue
                if policy.site_kinds is not None and site.kind not in policy.site_kinds:
                    ok = False
                countries = set().union(*(BLOCS.get(j, {j}) for j in policy.jurisdictions or []))
                if policy.jurisdictions is not None and site.jurisdiction not in countries:
                    ok = False
                if not set(policy.certifications) <= set(site.certifications):
                    ok = False
                if not policy.may_copy and sname != demand.home_site:
                    ok = False
            gpu = HARDWARE[offer.accelerator].kind == "gpu"
            if demand.cpu_only and gpu:
                ok = False
            nodes = math.ceil(demand.devices / offer.per_node) if gpu else demand.devices
            if nodes > offer.nodes:
                ok = False
            if not ok:
                continue
            units = demand.devices if gpu else offer.per_node * nodes
            run = demand.work_tflop_hours / (HARDWARE[offer.accelerator].tflops * units)
            wait = offer.queue_wait_hours if nodes > offer.free_nodes else 0.0
            moved = sname != demand.home_site and demand.size_gb > 0
            transfer = demand.size_gb * 8 / catalog.bandwidth_gbps(demand.home_site, sname) / 3600 if moved else 0.0
            egress = demand.size_gb * catalog.sites[demand.home_site].egress_usd_per_gb if moved else 0.0
            storage = demand.size_gb * site.storage_usd_per_gb_month * (transfer + run) / HOURS_PER_MONTH if moved else 0.0
            cost = nodes * offer.hourly_usd * run + egress + storage
            finish = wait + offer.provisioning_hours + transfer + run
            on_time = demand.deadline_hours is None or finish <= demand.deadline_hours
            in_budget = demand.budget_usd is None or cost <= demand.budget_usd
            tier = 0 if on_time and in_budget else 1 if in_budget else 2
            key = (cost, finish) if demand.objective == "cost" or tier == 2 else (finish, cost)
            candidate = ((tier, *key), row, (sname, offer.name))
            if best is None or candidate[:2] < best[:2]:
                best = candidate
            tiers[row] = tier
    return None if best is None else best[2]


def time_plans(jobs: list[Demand], catalog: Catalog) -> tuple[float, float]:
    start = time.perf_counter()
    table = offer_table(catalog)
    built = time.perf_counter() - start
    start = time.perf_counter()
    for job in jobs:
        plan(job, table)
    return built, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="Fewer jobs, for a smoke run.")
    args = parser.parse_args()
    n_jobs = 100 if args.quick else 1000
    offers_per_site = 20
    growth = []
    for n_sites in (50, 100, 200, 500):
        catalog = make_catalog(n_sites, offers_per_site)
        jobs = make_jobs(catalog, n_jobs)
        built, seconds = time_plans(jobs, catalog)
        growth.append({"sites": n_sites, "offers": n_sites * offers_per_site, "jobs": n_jobs,
                       "table_build_s": built, "plan_s": seconds, "plans_per_s": n_jobs / seconds,
                       "ms_per_plan": 1000 * seconds / n_jobs})
        print(f"{n_sites:4d} sites x {offers_per_site} offers: {n_jobs} plans in {seconds:.2f} s "
              f"({n_jobs / seconds:,.0f} plans/s; table built in {built:.2f} s)")

    # Anchor: the plain loop, on a sample of the jobs of the largest catalog; same choices required.
    catalog = make_catalog(500, offers_per_site)
    jobs = make_jobs(catalog, n_jobs)
    table = offer_table(catalog)
    sample = jobs[: (20 if args.quick else 100)]
    start = time.perf_counter()
    naive = [naive_plan(j, catalog) for j in sample]
    naive_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = [plan(j, table) for j in sample]
    ours_s = time.perf_counter() - start
    agree = sum(
        (p.chosen.site, p.chosen.offer) == n if p.chosen else n is None for p, n in zip(ours, naive)
    )
    largest = growth[-1]
    small = growth[0]
    result = {
        "benchmark": "planner",
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "jobs": n_jobs,
        "offers_per_site": offers_per_site,
        "growth": growth,
        "largest": {"sites": largest["sites"], "offers": largest["offers"], "seconds_for_all_jobs": largest["plan_s"],
                    "plans_per_s": largest["plans_per_s"]},
        "growth_ratio_time_per_plan_10x_catalog": largest["ms_per_plan"] / small["ms_per_plan"],
        "anchor": {"what": "plain-Python loop over offers (same rules, same choice)", "jobs": len(sample),
                   "naive_s": naive_s, "ours_s": ours_s, "speedup": naive_s / ours_s,
                   "same_choice": agree, "of": len(sample)},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"anchor: plain loop {naive_s:.2f} s vs ours {ours_s:.2f} s for {len(sample)} plans "
          f"({naive_s / ours_s:.1f}x); same choice on {agree}/{len(sample)}")
    print(f"wrote {RESULTS}")
    if agree != len(sample):
        sys.exit("the plain planner and ours disagree: a bug in one of them")


if __name__ == "__main__":
    main()
