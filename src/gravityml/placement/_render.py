"""Plans for people (rows and a paragraph), for machines (JSON) and for the eye (PNG)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from gravityml.placement._planner import Candidate, Plan

COLUMNS = (
    "", "site", "offer", "market", "nodes", "compute $", "egress $", "storage $", "total $",
    "wait h", "prov h", "transfer h", "run h", "finish h", "verdict",
)


def _hours(value: float) -> str:
    return "inf" if not np.isfinite(value) else f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def _usd(value: float) -> str:
    if 0 < value < 0.01:
        return f"{value:.2g}"  # cents would round a short run to a misleading 0.00
    return f"{value:,.2f}" if value < 1e6 else f"{value:,.4g}"


def verdict(plan: Plan, c: Candidate) -> str:
    if c.rejected_by is not None:
        return f"rejected: {c.rejected_by}"
    problems = []
    if not c.meets_deadline:
        problems.append("late")
    if not c.meets_budget:
        problems.append("over budget")
    return ", ".join(problems) or "ok"


def rows(plan: Plan, limit: int | None = None) -> list[list[str]]:
    """Table rows of the allowed candidates, the chosen first, then by the objective."""
    order = [int(i) for i in _order(plan) if plan.allowed[int(i)]]
    out = []
    for i in order[:limit]:
        c = plan.candidate(i)
        out.append([
            "*" if c.chosen else "", c.site, c.offer, c.market, str(c.nodes),
            _usd(c.compute_usd), _usd(c.egress_usd), _usd(c.storage_usd), _usd(c.total_usd),
            _hours(c.wait_hours), _hours(c.provisioning_hours), _hours(c.transfer_hours), _hours(c.run_hours),
            _hours(c.finish_hours), verdict(plan, c),
        ])
    return out


def rejections(plan: Plan) -> list[tuple[str, list[str]]]:
    """Each rule that rejected candidates, with the site/offer/market rows it rejected."""
    out = []
    for index, text in enumerate(plan.reasons):
        hit = np.flatnonzero(plan.reason == index)
        t = plan.table
        out.append((text, [f"{t.site_names[t.row_site[i]]}/{t.row_offer[i]}/{t.row_market[i]}" for i in hit]))
    return out


def _order(plan: Plan) -> np.ndarray:
    key = plan.total_usd if plan.demand.objective == "cost" else plan.finish_hours
    chosen_first = np.arange(len(plan.table)) != (plan.chosen_row if plan.chosen_row is not None else -1)
    return np.lexsort((key, ~plan.allowed, chosen_first))


def explain(plan: Plan) -> str:
    """One paragraph: what was chosen, why, and why not the obvious alternatives."""
    d = plan.demand
    c = plan.chosen
    data = (f"its data {d.dataset!r} ({d.size_gb:.3g} GB, tags {list(d.tags)}) lives at {d.home_site!r}"
            if d.dataset else "its data is not in the catalog (no policy applies)")
    parts = [f"Job {d.job!r}: {data}. Work estimate: {d.basis}."]
    if c is None:
        rules = sorted(set(plan.reasons))
        parts.append(f"No site can take it: every candidate is rejected ({'; '.join(rules)}).")
        return " ".join(parts)
    site = plan.table.catalog.sites[c.site]
    parts.append(
        f"Chosen: {c.site} ({site.kind}, {site.jurisdiction}) {c.offer} {c.market} x{c.nodes}, "
        f"{_usd(c.total_usd)} $ and finished in {_hours(c.finish_hours)} h, by objective {d.objective}."
    )
    allowed = plan.allowed
    # The cheaper sites a rule rules out are what a reader asks about ("why not the cloud?").
    t = plan.table
    fits = ~((d.cpu_only & t.row_gpu) | (d.needs_gpu & ~t.row_gpu))
    fits &= d.spot | ~t.row_spot
    ruled_out = [i for i in np.argsort(plan.total_usd, kind="stable") if not allowed[i] and fits[i]
                 and plan.total_usd[i] < c.total_usd - 1e-12
                 and plan.reasons[plan.reason[i]].startswith(("policy", "pinned"))]
    seen: set[str] = set()
    for i in ruled_out:
        other = plan.candidate(int(i))
        if other.site in seen or len(seen) == 2:
            continue
        seen.add(other.site)
        parts.append(f"{other.site} {other.offer} would cost less ({_usd(other.total_usd)} $) but is ruled out by "
                     f"{other.rejected_by}.")
    faster = np.flatnonzero(allowed & (plan.total_usd < c.total_usd - 1e-12))
    if len(faster) and plan.status == "ok":
        best = int(faster[np.argmin(plan.total_usd[faster])])
        other = plan.candidate(best)
        parts.append(f"The cheaper {other.site} {other.offer} ({_usd(other.total_usd)} $) is passed over: "
                     f"{verdict(plan, other) if verdict(plan, other) != 'ok' else 'it finishes later'} "
                     f"({_hours(other.finish_hours)} h).")
    if plan.status == "misses_deadline":
        why = []
        if c.wait_hours:
            why.append(f"waits {_hours(c.wait_hours)} h for free nodes")
        if c.transfer_hours:
            why.append(f"moves data for {_hours(c.transfer_hours)} h")
        why.append(f"runs {_hours(c.run_hours)} h")
        rejected = sorted({plan.reasons[r] for r in set(plan.reason[plan.meets_deadline & ~allowed].tolist())})
        tail = f"; the sites that would meet it are ruled out ({'; '.join(rejected)})" if rejected else ""
        parts.append(f"It will miss the deadline of {d.deadline_hours:g} h: it {', '.join(why)}{tail}.")
    if plan.status == "over_budget":
        parts.append(f"Even the cheapest allowed candidate ({_usd(c.total_usd)} $) is over the budget "
                     f"({d.budget_basis}: {_usd(d.budget_usd or 0.0)} $ left), so it will not run.")
    elif d.budget_usd is not None:
        parts.append(f"Budget: {_usd(d.budget_usd)} $ left ({d.budget_basis}).")
    return " ".join(parts)


def to_json(plan: Plan, limit: int | None = None) -> dict[str, Any]:
    d = plan.demand
    return {
        "job": d.job,
        "experiment": d.experiment,
        "status": plan.status,
        "objective": d.objective,
        "estimate_basis": d.basis,
        "work_tflop_hours": d.work_tflop_hours,
        "data": {"dataset": d.dataset, "home_site": d.home_site, "size_gb": d.size_gb, "tags": list(d.tags)},
        "budget_usd": d.budget_usd,
        "budget_basis": d.budget_basis,
        "deadline_hours": d.deadline_hours,
        "chosen": _clean(asdict(plan.chosen)) if plan.chosen else None,
        "explanation": explain(plan),
        "candidates": [_clean(asdict(plan.candidate(int(i)))) for i in _order(plan)[:limit]],
        "catalog": plan.table.catalog.path,
    }


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}


def plot(plan: Plan, path: Path, limit: int = 30) -> Path:
    """Cost and finish time of the allowed candidates (chosen in colour), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [int(i) for i in _order(plan) if plan.allowed[int(i)]][:limit]
    labels = [f"{plan.candidate(i).site}/{plan.candidate(i).offer}/{plan.candidate(i).market}" for i in order]
    colours = ["tab:orange" if i == plan.chosen_row else "tab:blue" for i in order]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.4 * max(len(order), 3) + 1.5), sharey=True)
    y = np.arange(len(order))
    ax1.barh(y, plan.total_usd[order], color=colours)
    ax1.set_xlabel("total cost (USD)")
    ax1.set_yticks(y, labels)
    ax1.invert_yaxis()
    ax2.barh(y, plan.finish_hours[order], color=colours)
    ax2.set_xlabel("finish (hours)")
    if plan.demand.budget_usd is not None:
        ax1.axvline(plan.demand.budget_usd, color="red", linestyle="--", label="budget")
        ax1.legend()
    if plan.demand.deadline_hours is not None:
        ax2.axvline(plan.demand.deadline_hours, color="red", linestyle="--", label="deadline")
        ax2.legend()
    fig.suptitle(f"plan for {plan.demand.job}: chosen in orange ({plan.status})")
    fig.tight_layout()
    from gravityml.data import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path
