"""The planner: enumerate -> filter by policy and hardware -> estimate -> choose (pure functions).

Every stage takes values and returns new ones; nothing is mutated. A :class:`Plan` keeps every
candidate with its costs and times, or the rule that rejected it (SkyPilot's optimizer prints such
a table: https://github.com/skypilot-org/skypilot/blob/master/sky/optimizer.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gravityml.data import BLOCS, HOURS_PER_MONTH
from gravityml.placement._demand import Demand
from gravityml.placement._hardware import THIS_MACHINE
from gravityml.placement._offers import OfferTable

Status = Literal["ok", "misses_deadline", "over_budget", "no_site"]
OK = -1  # reason index of a candidate no rule rejected


@dataclass(frozen=True)
class Candidate:
    """One (site, offer, market) with everything the plan knows about it, for people and JSON."""

    site: str
    offer: str
    market: str
    accelerator: str
    nodes: int
    hourly_usd: float
    compute_usd: float
    egress_usd: float
    storage_usd: float
    total_usd: float
    wait_hours: float
    provisioning_hours: float
    transfer_hours: float
    run_hours: float
    finish_hours: float
    meets_deadline: bool
    meets_budget: bool
    rejected_by: str | None
    chosen: bool = False

    @property
    def allowed(self) -> bool:
        return self.rejected_by is None


@dataclass(frozen=True, eq=False)
class Plan:
    """A job's candidates as columns, the reasons that rejected some, and the choice."""

    demand: Demand
    table: OfferTable
    reason: np.ndarray  # index into reasons, OK when allowed
    reasons: tuple[str, ...]
    nodes: np.ndarray
    compute_usd: np.ndarray
    egress_usd: np.ndarray
    storage_usd: np.ndarray
    total_usd: np.ndarray
    wait_hours: np.ndarray
    transfer_hours: np.ndarray
    run_hours: np.ndarray
    finish_hours: np.ndarray
    meets_deadline: np.ndarray
    meets_budget: np.ndarray
    chosen_row: int | None
    status: Status

    def candidate(self, row: int) -> Candidate:
        t = self.table
        return Candidate(
            site=t.site_names[t.row_site[row]],
            offer=t.row_offer[row],
            market=t.row_market[row],
            accelerator=t.row_accelerator[row],
            nodes=int(self.nodes[row]),
            hourly_usd=float(t.row_hourly_usd[row]),
            compute_usd=float(self.compute_usd[row]),
            egress_usd=float(self.egress_usd[row]),
            storage_usd=float(self.storage_usd[row]),
            total_usd=float(self.total_usd[row]),
            wait_hours=float(self.wait_hours[row]),
            provisioning_hours=float(t.row_provisioning_hours[row]),
            transfer_hours=float(self.transfer_hours[row]),
            run_hours=float(self.run_hours[row]),
            finish_hours=float(self.finish_hours[row]),
            meets_deadline=bool(self.meets_deadline[row]),
            meets_budget=bool(self.meets_budget[row]),
            rejected_by=None if self.reason[row] == OK else self.reasons[self.reason[row]],
            chosen=row == self.chosen_row,
        )

    @property
    def candidates(self) -> list[Candidate]:
        return [self.candidate(i) for i in range(len(self.table))]

    @property
    def chosen(self) -> Candidate | None:
        return None if self.chosen_row is None else self.candidate(self.chosen_row)

    @property
    def allowed(self) -> np.ndarray:
        return self.reason == OK

    def rejection_for_site(self, site: str) -> str | None:
        """The rule that rejects every offer of ``site`` for this job (None if some offer is allowed)."""
        rows = np.flatnonzero(self.table.row_site == self.table.site_index[site])
        if np.any(self.reason[rows] == OK):
            return None
        return self.reasons[self.reason[rows[0]]]


def _expand(jurisdictions: list[str]) -> set[str]:
    out: set[str] = set()
    for j in jurisdictions:
        out |= set(BLOCS.get(j, {j}))
    return out


def _local_capacity(demand: Demand) -> int:
    """GPUs (for a cuda job) or cores of this machine: what its local site can give one job."""
    if demand.needs_gpu:
        from gravityml.compute import available_accelerators

        return available_accelerators().get("cuda", 0)
    return os.cpu_count() or 1


def filter_rows(demand: Demand, table: OfferTable) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Stage 2: the first rule that rejects each row (policy before hardware), and nodes needed.

    Returns (reason index per row, reason texts, nodes needed per row).
    """
    reasons: list[str] = []
    reason = np.full(len(table), OK, dtype=np.int64)

    def reject(mask_rows: np.ndarray, text: str) -> None:
        hit = mask_rows & (reason == OK)
        if np.any(hit):
            reasons.append(text)
            reason[hit] = len(reasons) - 1

    site_of = table.row_site
    if demand.site is not None:
        pinned = table.site_index.get(demand.site, -1)
        reject(site_of != pinned, f"pinned to site {demand.site!r}")
    tags = list(demand.tags)
    for policy in table.catalog.policies_for(tags):
        head = f"policy {policy.name!r} (data tags {sorted(set(policy.tags) & set(tags))})"
        if policy.site_kinds is not None:
            kinds = np.where(table.site_cloud, "cloud", "on_prem")
            reject(~np.isin(kinds, policy.site_kinds)[site_of], f"{head}: site kind must be one of {policy.site_kinds}")
        if policy.jurisdictions is not None:
            ok = np.isin(table.site_jurisdiction, sorted(_expand(policy.jurisdictions)))
            reject(~ok[site_of], f"{head}: jurisdiction must be in {policy.jurisdictions}")
        for cert in policy.certifications:
            certified = table.site_certified.get(cert, np.zeros(len(table.site_names), dtype=bool))
            reject(~certified[site_of], f"{head}: site must hold certification {cert!r}")
        if not policy.may_copy and demand.home_site is not None:
            home = table.site_index[demand.home_site]
            reject(site_of != home, f"{head}: data may not leave its home site {demand.home_site!r}")
    if demand.home_site is not None and not demand.size_known:
        # Counting an unknown size as 0 GB would make moving the data look free.
        home = table.site_index[demand.home_site]
        reject(site_of != home, f"data: dataset {demand.dataset!r} has no size_gb and its store does not say, "
                                f"so moving it off {demand.home_site!r} cannot be priced")
    # The local site's offer stands for this machine, whose accelerators the catalog cannot list:
    # it takes the job when this machine has the devices the job asks for (GPUs, or cores for
    # CPU worker processes).
    here = np.array([a == THIS_MACHINE for a in table.row_accelerator], dtype=bool)
    here_fits = bool(here.any()) and demand.devices <= _local_capacity(demand)
    if demand.cpu_only:
        reject(table.row_gpu & ~here,
               "hardware: the job runs on CPU (a scikit-learn or Spark MLlib model, or compute.accelerator: cpu)")
    if demand.needs_gpu:
        reject(~table.row_gpu & ~(here & here_fits), "hardware: the job asks for compute.accelerator: cuda")
    # A Spark site trains Spark MLlib jobs where its tables live (its executor refuses any other model type).
    if not demand.spark:
        reject(table.row_spark, "engine: a Spark site runs Spark MLlib jobs only (model.type spark_*)")
    # devices are accelerators on a GPU row and worker processes (one core each) on a CPU row; a Spark
    # job takes every executor of a Spark site (the cluster spreads its tasks over all of them).
    nodes = np.where(here & here_fits, 1, -(-demand.devices // table.row_per_node))
    if demand.spark:
        nodes = np.where(table.row_spark, table.row_nodes, nodes)
    reject(nodes > table.row_nodes, f"hardware: {demand.devices} devices need more nodes than the offer has")
    if not demand.spot:
        reject(table.row_spot, "spot prices not asked for (placement.spot: false)")
    return reason, tuple(reasons), nodes


def plan(demand: Demand, table: OfferTable) -> Plan:
    """Plan one job against every row of ``table``."""
    reason, reasons, nodes = filter_rows(demand, table)
    # Stage 3: estimate. Throughput is per accelerator for GPUs, per core (whole nodes) for CPUs.
    units = np.where(table.row_gpu, demand.devices, table.row_per_node * nodes)
    run_hours = demand.work_tflop_hours / (table.row_tflops * units)
    wait_hours = np.where(nodes > table.row_free_nodes, table.row_queue_wait_hours, 0.0)
    if demand.home_site is not None and demand.size_gb > 0:
        home = table.site_index[demand.home_site]
        moved = table.row_site != home
        bandwidth = table.bandwidth_gbps[home][table.row_site]
        transfer_hours = np.where(moved, demand.size_gb * 8.0 / np.where(moved, bandwidth, 1.0) / 3600.0, 0.0)
        egress_usd = np.where(moved, demand.size_gb * table.site_egress_usd_per_gb[home], 0.0)
        storage_rate = table.site_storage_usd_per_gb_month[table.row_site]
        storage_usd = np.where(moved, demand.size_gb * storage_rate * (transfer_hours + run_hours) / HOURS_PER_MONTH, 0.0)
    else:
        transfer_hours = egress_usd = storage_usd = np.zeros(len(table))
    compute_usd = nodes * table.row_hourly_usd * run_hours
    total_usd = compute_usd + egress_usd + storage_usd
    finish_hours = wait_hours + table.row_provisioning_hours + transfer_hours + run_hours
    meets_deadline = (
        finish_hours <= demand.deadline_hours if demand.deadline_hours is not None else np.ones(len(table), bool)
    )
    meets_budget = total_usd <= demand.budget_usd if demand.budget_usd is not None else np.ones(len(table), bool)
    chosen, status = choose(demand.objective, reason == OK, meets_deadline, meets_budget, total_usd, finish_hours)
    return Plan(
        demand=demand, table=table, reason=reason, reasons=reasons, nodes=nodes, compute_usd=compute_usd,
        egress_usd=egress_usd, storage_usd=storage_usd, total_usd=total_usd, wait_hours=wait_hours,
        transfer_hours=transfer_hours, run_hours=run_hours, finish_hours=finish_hours,
        meets_deadline=meets_deadline, meets_budget=meets_budget, chosen_row=chosen, status=status,
    )


def choose(
    objective: str,
    allowed: np.ndarray,
    meets_deadline: np.ndarray,
    meets_budget: np.ndarray,
    total_usd: np.ndarray,
    finish_hours: np.ndarray,
) -> tuple[int | None, Status]:
    """Stage 4: the best row by ``objective`` among those meeting every limit.

    When none meets them all, the best allowed row within budget (it runs, late), else the
    cheapest allowed row is reported with status ``over_budget`` (and is refused before running).
    """
    primary, secondary = (total_usd, finish_hours) if objective == "cost" else (finish_hours, total_usd)
    for mask, status in (
        (allowed & meets_deadline & meets_budget, "ok"),
        (allowed & meets_budget, "misses_deadline"),
        (allowed, "over_budget"),
    ):
        rows = np.flatnonzero(mask)
        if len(rows):
            # Over budget, the cheapest row is the one to report: it says how much would be needed.
            first, second = (total_usd, finish_hours) if status == "over_budget" else (primary, secondary)
            return _best(rows, first, second), status  # type: ignore[return-value]
    return None, "no_site"


def _best(rows: np.ndarray, first: np.ndarray, second: np.ndarray) -> int:
    """The row with the least ``first``, then ``second``, then index (O(n): no sort)."""
    values = first[rows]
    rows = rows[values == values.min()]
    if len(rows) > 1:
        values = second[rows]
        rows = rows[values == values.min()]
    return int(rows[0])


def plan_many(demands: list[Demand], table: OfferTable) -> list[Plan]:
    """Plans for many jobs against one catalog (the table is built once)."""
    return [plan(d, table) for d in demands]
