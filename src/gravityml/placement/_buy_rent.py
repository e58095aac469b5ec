"""Buy versus rent: the yearly cost of renting each cloud offer against owning hardware.

Renting costs what each run costs (compute, egress, storage) times runs per year. Owning costs the
capital amortised over the lifetime plus operations for every node owned, whatever the use, plus
power (with PUE) for the hours actually run; enough nodes are owned to fit the yearly hours at the
stated utilisation. Break-even is where the two lines cross.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gravityml.data import HOURS_PER_YEAR
from gravityml.placement._hardware import THIS_MACHINE
from gravityml.placement._planner import Plan


@dataclass(frozen=True)
class Option:
    site: str
    offer: str
    kind: str  # rent | own
    per_run_usd: float  # rent: what one run costs; own: power and energy of one run
    fixed_usd_per_year: float  # own: capital + operations of the nodes one run needs
    run_node_hours: float
    capacity_node_hours: float  # own: useful node-hours per year of those nodes
    rejected_by: str | None

    def yearly_usd(self, runs_per_year: float) -> float:
        if self.kind == "rent":
            return runs_per_year * self.per_run_usd
        sets = max(1, math.ceil(runs_per_year * self.run_node_hours / self.capacity_node_hours - 1e-9))
        return sets * self.fixed_usd_per_year + runs_per_year * self.per_run_usd


@dataclass(frozen=True)
class BuyVsRent:
    job: str
    runs_per_year: float
    options: tuple[Option, ...]
    best_rent: Option | None
    best_own: Option | None
    break_even_runs: float | None  # runs per year above which owning is cheaper
    recommendation: str


def buy_vs_rent(plan: Plan, runs_per_year: float) -> BuyVsRent:
    """Compare renting and owning for the job of ``plan`` run ``runs_per_year`` times a year."""
    table = plan.table
    options = []
    for row in range(len(table)):
        c = plan.candidate(row)
        site = table.catalog.sites[c.site]
        if c.market == "spot" or (c.rejected_by or "").startswith("pinned"):
            continue
        if c.accelerator == THIS_MACHINE:
            continue  # this machine is already paid for: it can be used, never bought
        rejected = c.rejected_by
        # A queue is today's occupancy, not a property of owning: only the job's own hours count.
        hours = c.run_hours + c.transfer_hours + (c.provisioning_hours if site.kind == "cloud" else 0.0)
        deadline = plan.demand.deadline_hours
        if rejected is None and deadline is not None and hours > deadline:
            rejected = f"too slow for the deadline: {hours:.3g} h > {deadline:g} h"
        node_hours = c.nodes * c.run_hours
        if site.kind == "cloud":
            options.append(Option(c.site, c.offer, "rent", c.total_usd, 0.0, node_hours, math.inf, rejected))
        else:
            owned = site.offer(c.offer).owned
            assert owned is not None
            options.append(Option(
                c.site, c.offer, "own",
                per_run_usd=node_hours * owned.power_hourly_usd + c.egress_usd + c.storage_usd,
                fixed_usd_per_year=c.nodes * owned.capital_usd_per_year,
                run_node_hours=node_hours,
                capacity_node_hours=c.nodes * HOURS_PER_YEAR * owned.utilisation,
                rejected_by=rejected,
            ))
    allowed = [o for o in options if o.rejected_by is None]
    rent = min((o for o in allowed if o.kind == "rent"), key=lambda o: o.yearly_usd(runs_per_year), default=None)
    own = min((o for o in allowed if o.kind == "own"), key=lambda o: o.yearly_usd(runs_per_year), default=None)
    even = _break_even(rent, own)
    return BuyVsRent(plan.demand.job, runs_per_year, tuple(options), rent, own, even,
                     _recommend(rent, own, runs_per_year, even))


def _break_even(rent: Option | None, own: Option | None) -> float | None:
    if rent is None or own is None or rent.per_run_usd <= own.per_run_usd:
        return None
    return own.fixed_usd_per_year / (rent.per_run_usd - own.per_run_usd)


def _recommend(rent: Option | None, own: Option | None, runs: float, even: float | None) -> str:
    if rent is None and own is None:
        return "no allowed option: every site is ruled out for this job"
    if rent is None:
        assert own is not None
        return f"buy: no cloud offer is allowed for this job; owning {own.site}/{own.offer} costs " \
               f"{own.yearly_usd(runs):,.0f} $/year"
    if own is None:
        return f"rent {rent.site}/{rent.offer}: no owned hardware is allowed; {rent.yearly_usd(runs):,.0f} $/year"
    r, o = rent.yearly_usd(runs), own.yearly_usd(runs)
    where = f" (break-even at {even:,.0f} runs/year)" if even is not None else ""
    if r <= o:
        return f"rent {rent.site}/{rent.offer}: {r:,.0f} $/year against {o:,.0f} $ to own {own.site}/{own.offer}{where}"
    return f"buy {own.site}/{own.offer}: {o:,.0f} $/year against {r:,.0f} $ to rent {rent.site}/{rent.offer}{where}"


def plot_buy_vs_rent(result: BuyVsRent, path: Path, max_runs: float | None = None) -> Path:
    """Yearly cost against runs per year for the allowed options (at most 8 of each kind)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gravityml.data import atomic_write

    top = max(max_runs or 0.0, result.runs_per_year * 2, (result.break_even_runs or 0) * 2, 10.0)
    runs = np.linspace(0, top, 200)
    fig, ax = plt.subplots(figsize=(9, 5))
    allowed = [o for o in result.options if o.rejected_by is None]
    for kind, style in (("rent", "-"), ("own", "--")):
        chosen = sorted((o for o in allowed if o.kind == kind), key=lambda o: o.yearly_usd(result.runs_per_year))[:8]
        for o in chosen:
            ax.plot(runs, [o.yearly_usd(r) for r in runs], style, label=f"{kind} {o.site}/{o.offer}")
    ax.axvline(result.runs_per_year, color="grey", linestyle=":", label=f"{result.runs_per_year:g} runs/year")
    if result.break_even_runs is not None:
        ax.axvline(result.break_even_runs, color="red", linestyle=":", label="break-even")
    ax.set_xlabel("runs per year")
    ax.set_ylabel("USD per year")
    ax.set_title(f"buy vs rent for {result.job}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path
