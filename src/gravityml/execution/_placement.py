"""Place a job: plan it against the catalog, enforce the plan, and hand back a :class:`Placed` (layer 4).

Planning lives in ``gravityml.placement`` (pure functions); this module adds what needs the other
layers: reading the workspace's ledger, a measured calibration run of the job's own trainer on a
sample of its data (only where policy already lets the data be, and only where the data is: this
machine), and the checks that refuse a run (policy, budget) with typed errors. What it returns is
handed to an executor (``_executor.py``), which runs it without planning again.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gravityml._typing import Metrics, NullSink
from gravityml.data import Catalog, Site, load_catalog, load_dataset
from gravityml.errors import BudgetError, GravityMLError, PlacementError, PolicyError
from gravityml.execution._job import PlacedJob, spec_digest
from gravityml.placement import (
    Calibration,
    Candidate,
    Entry,
    Meter,
    Plan,
    demand_for,
    ledger_append,
    ledger_read,
    offer_table,
    plan,
    spent_usd,
)
from gravityml.spec import MODEL_TYPES, JobSpec, load_spec
from gravityml.tracking import LINEAGE_PREFIX, TrackedRun, Workspace

_STOPPED_TAG = f"{LINEAGE_PREFIX}stopped_for_budget"
#: Rows (or RL timesteps) of the calibration run: enough to time, small enough to be quick.
CALIBRATION_SAMPLES = 256
#: Epochs a Keras calibration runs: the first pays for TensorFlow's graph tracing and is not timed; the
#: fastest of the others is (one epoch of 256 rows is a tenth of a second, which a burst of load on a
#: shared machine can stretch several times: the fastest of two is the machine's pace, not the burst's).
KERAS_CALIBRATION_EPOCHS = 3
#: Bumped when what a calibration measures changes, so a workspace's cached ones are measured again.
_CALIBRATION_VERSION = 3


@dataclass(frozen=True)
class Placed:
    """The enforced choice for one run: where, on what, and what it is forecast to cost."""

    plan: Plan
    candidate: Candidate
    spec: JobSpec

    @property
    def catalog(self) -> Catalog:
        return self.plan.table.catalog

    @property
    def site(self) -> Site:
        return self.catalog.sites[self.candidate.site]

    @property
    def lineage(self) -> dict[str, str]:
        """What was planned (``planned_site``); where it ran is the executor's to record."""
        c = self.candidate
        return {
            "planned_site": c.site,
            "offer": c.offer,
            "market": c.market,
            "forecast_usd": f"{c.total_usd:.4f}",
            "estimate_basis": self.plan.demand.basis,
            "catalog": self.catalog.path or "(none: this machine only)",
        }

    def job(self) -> PlacedJob:
        """The plain value an executor runs."""
        c, d = self.candidate, self.plan.demand
        moves = d.home_site is not None and d.home_site != c.site and d.size_gb > 0
        home = self.catalog.sites[d.home_site] if d.home_site is not None else None
        store = home.storage if moves and home is not None else None
        return PlacedJob(
            spec=self.spec.document(),
            base_dir=str(self.spec.base_dir),
            site=c.site,
            jurisdiction=self.site.jurisdiction,
            offer=c.offer,
            hourly_usd=c.hourly_usd,
            nodes=c.nodes,
            egress_usd=c.egress_usd,
            forecast_usd=c.total_usd,
            experiment=d.experiment,
            budget_usd=d.budget_usd,
            plan=self.lineage,
            tracking_uri=self.catalog.tracking_uri,
            artifact_location=self.site.artifact_location,
            moves_from=d.home_site if moves else None,
            moved_gb=d.size_gb if moves else 0.0,
            source_store={k: v for k, v in (store.env({}) if store is not None else {}).items()},
            source_key_env={target: name for target, name in (
                ("AWS_ACCESS_KEY_ID", store.access_key_env if store is not None else None),
                ("AWS_SECRET_ACCESS_KEY", store.secret_key_env if store is not None else None)) if name},
            **self._resources(),
        )

    def _resources(self) -> dict[str, Any]:
        """CPUs, GPUs and memory for the job on the chosen offer (devices are GPUs, or worker processes)."""
        c, compute = self.candidate, self.spec.compute
        gpu = c.accelerator not in ("cpu", "this-machine") and compute.accelerator in ("auto", "cuda")
        gpu = gpu or compute.accelerator == "cuda"
        offer = self.site.offer(c.offer)
        if compute.workers > 1:  # the driver only coordinates: Ray Train's workers ask for their own devices
            return {"cpus": 1.0, "gpus": 0.0, "memory_gb": None}
        return {"cpus": 1.0 if gpu else float(compute.devices), "gpus": float(compute.devices) if gpu else 0.0,
                "memory_gb": offer.memory_gb}


class _EpochClock(NullSink):
    """A sink that notes when each epoch ends (the deep loops log ``time/samples_per_s`` then)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def log_metrics(self, metrics: Metrics, step: int | None = None) -> None:
        if step is not None and "time/samples_per_s" in metrics:
            self.ends.append(time.perf_counter())


def calibrate(spec: JobSpec, workspace: Workspace) -> Calibration | None:
    """Time the job's own trainer on a small sample here; None when it cannot run (the plan says so).

    A torch network trains one epoch of the sample and the whole call is timed. A Keras network
    (``model.type: keras`` or ``framework: tensorflow``) trains :data:`KERAS_CALIBRATION_EPOCHS`
    and the fastest epoch after the first is timed: the first pays once for importing TensorFlow and
    tracing the train and test steps into graphs (seconds, against milliseconds for a steady epoch of a
    small network), a cost that a many-epoch job does not pay per epoch. Cached per spec in the
    workspace, so `plan` then `train` measure once.
    """
    from gravityml.paradigms import TrainContext, train

    cache = workspace.ensure().cache_dir / "calibration" / f"{spec_digest(spec)[:16]}.v{_CALIBRATION_VERSION}.json"
    if cache.exists():
        return Calibration(**json.loads(cache.read_text()))
    backend = MODEL_TYPES[spec.model.type].backend
    on_keras = backend == "tensorflow" or spec.model.framework == "tensorflow"
    clock = _EpochClock()
    updates: dict[str, Any] = {}
    fraction = 1.0
    try:
        dataset = load_dataset(spec) if spec.data is not None else None
        if dataset is not None:
            rows = len(dataset.frame)
            take = min(rows, CALIBRATION_SAMPLES)
            dataset = dataclasses.replace(dataset, frame=dataset.frame.sample(n=take, random_state=0))
            fraction = take / rows
            what = f"{take:,} of {rows:,} rows"
            if on_keras:
                updates["train"] = spec.train.model_copy(update={"epochs": KERAS_CALIBRATION_EPOCHS})
                fraction /= spec.train.epochs
            elif backend == "torch":
                updates["train"] = spec.train.model_copy(update={"epochs": 1})
                fraction /= spec.train.epochs
                what += f", 1 of {spec.train.epochs} epochs"
        else:
            total = spec.train.timesteps or CALIBRATION_SAMPLES
            take = min(total, CALIBRATION_SAMPLES)
            updates["train"] = spec.train.model_copy(update={"timesteps": take})
            fraction = take / total
            what = f"{take:,} of {total:,} timesteps"
        small = spec.model_copy(update=updates).with_base_dir(spec.base_dir)
        with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
            start = time.perf_counter()
            train(TrainContext(spec=small, workdir=Path(tmp), dataset=dataset, sink=clock))
            seconds = time.perf_counter() - start
    except GravityMLError:
        return None
    if on_keras and dataset is not None:
        ends = [start, *clock.ends]
        if len(ends) > 2:  # the epochs after the first: steady ones, their graphs already traced
            steady = [b - a for a, b in zip(ends[1:], ends[2:], strict=False)]
            seconds = min(steady)
            fastest = 2 + steady.index(seconds)
            what += (f", 1 steady epoch of {spec.train.epochs} (the fastest of epochs 2-{len(ends) - 1} run here, "
                     f"epoch {fastest}; the {ends[1] - start:.2f} s up to the first one's end, set-up and graph "
                     "tracing included, left out)")
        else:  # it stopped after one epoch: the whole call, tracing included
            what += f", 1 of {spec.train.epochs} epochs (tracing included)"
    result = Calibration(seconds=seconds, fraction=fraction, what=what)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(dataclasses.asdict(result)))
    return result


def plan_job(
    spec: JobSpec | str | Path | Mapping[str, Any],
    *,
    site: str | None = None,
    catalog: Catalog | str | Path | None = None,
    workspace: Workspace | None = None,
    measure: bool | None = True,
) -> Plan:
    """The plan for ``spec``: every candidate with its cost and time, or the rule that rejects it.

    ``measure``: calibrate here when the spec has no estimate; None measures only when a budget or
    a deadline applies (what `train` does: without limits to check, the run is its own measurement).
    Calibration reads the data and runs the trainer on this machine, so it happens only where the
    data already is (no catalog dataset, or one homed at this machine's site) and where no policy
    of the data rejects this machine's site; otherwise the plan says it has no estimate.
    """
    spec = load_spec(spec)
    cat = catalog if isinstance(catalog, Catalog) else load_catalog(catalog, base_dir=spec.base_dir)
    pinned = site or (spec.placement.site if spec.placement else None)
    if pinned is not None and pinned not in cat.sites:
        raise PlacementError(
            f"site {pinned!r} is not in the catalog ({cat.path or 'none found: only this machine'})",
            allowed=list(cat.sites),
            got=pinned,
            fix="name one of the catalog's sites",
        )
    ws = workspace or Workspace.current()
    spent = spent_usd(ledger_read(ws.ledger_path), spec.experiment_name)
    explicit = spec.placement is not None and spec.placement.estimate is not None
    if measure is None:  # only where a forecast can change the outcome: limits, and a choice to make
        limits = spec.placement is not None and (spec.placement.budget_usd or spec.placement.deadline_hours)
        measure = (bool(limits) or spec.experiment_name in cat.budgets) and len(cat.sites) > 1
    table = offer_table(cat)
    demand = demand_for(spec, cat, spent_usd=spent, site=pinned)
    if not (measure and not explicit and _may_calibrate_here(plan(demand.evolve(site=None), table))):
        return plan(demand, table)
    calibration = calibrate(spec, ws)
    return plan(demand_for(spec, cat, calibration=calibration, spent_usd=spent, site=pinned), table)


def _may_calibrate_here(p: Plan) -> bool:
    """Whether the job's data may be read on this machine: it lives here and no policy rejects here."""
    cat, d = p.table.catalog, p.demand
    here = cat.here
    if here is None:
        return False  # this machine is at no site of the catalog: its data is somewhere else
    if d.home_site is not None and d.home_site != here:
        return False  # reading it here to time the trainer would move it
    rule = p.rejection_for_site(here)
    return rule is None or not rule.startswith(("policy", "data"))


def place(
    spec: JobSpec | str | Path | Mapping[str, Any],
    *,
    site: str | None = None,
    catalog: Catalog | str | Path | None = None,
    workspace: Workspace | None = None,
    measure: bool | None = None,
) -> Placed:
    """Plan ``spec``, enforce the plan (policy, budget) and return what an executor runs."""
    spec = load_spec(spec)
    return enforce(plan_job(spec, site=site, catalog=catalog, workspace=workspace, measure=measure), spec)


def enforce(p: Plan, spec: JobSpec | None = None) -> Placed:
    """The candidate to run on, or a typed error that refuses the run before it spends anything."""
    d = p.demand
    if d.site is not None:
        rule = p.rejection_for_site(d.site)
        if rule is not None:
            free = plan(d.evolve(site=None), p.table)
            allowed = [s for s in p.table.site_names if free.rejection_for_site(s) is None]
            data = f"dataset {d.dataset!r} (tags {list(d.tags)})" if d.dataset else "this job"
            cls = PolicyError if rule.startswith("policy") else PlacementError
            raise cls(
                f"site {d.site!r} is refused for {data}: {rule}",
                allowed=allowed,
                got=d.site,
                fix="train on a site the rule allows (see `gravityml plan JOB.yaml`), or leave out --site",
            )
    chosen = p.chosen
    if chosen is None:
        raise PlacementError(
            f"no site can take job {d.job!r}",
            got=sorted(set(p.reasons)),
            fix="see `gravityml plan JOB.yaml` for the rule that rejects each site",
        )
    if p.status == "over_budget":
        raise BudgetError(
            f"job {d.job!r} is forecast to cost {chosen.total_usd:.2f} $ at best ({chosen.site} {chosen.offer}), "
            f"over what remains of its budget, {d.budget_usd:.2f} $ ({d.budget_basis})",
            allowed=f"<= {d.budget_usd:.2f} $",
            got=f"{chosen.total_usd:.2f} $",
            fix=f"raise placement.budget_usd or budgets.{d.experiment}.usd in the catalog, or make the job smaller",
        )
    return Placed(plan=p, candidate=chosen, spec=spec if spec is not None else _spec_of(p))


def _spec_of(p: Plan) -> JobSpec:
    raise PlacementError(  # enforce(plan) without the spec is only for checking; Placed needs it
        f"job {p.demand.job!r}: enforce() needs the spec to build a placed job",
        fix="call place(spec) or enforce(plan, spec)",
    )


def start_meter(job: PlacedJob, workspace: Workspace, run: TrackedRun) -> Meter:
    """Record the forecast in the ledger and start metering against what remains of the budget."""
    ledger_append(workspace.ledger_path, _entry("forecast", job, run.run_id, job.forecast_usd, "started"))
    run.log_metrics({"cost/forecast_usd": job.forecast_usd})
    return Meter(
        hourly_usd=job.hourly_usd,
        nodes=job.nodes,
        egress_usd=job.egress_usd,
        cap_usd=job.budget_usd,
        report=lambda usd: run.log_metrics({"cost/metered_usd": usd}),
    )


def record_metered(job: PlacedJob, workspace: Workspace, run: TrackedRun, meter: Meter) -> None:
    status = "stopped_for_budget" if meter.stop_reason else "ended"
    usd, hours = meter.usd, meter.hours  # read once: the ledger and the run say the same amount
    ledger_append(workspace.ledger_path, _entry("metered", job, run.run_id, usd, status, hours))
    run.log_metrics({"cost/metered_usd": usd})
    if meter.stop_reason is None and _STOPPED_TAG in workspace.client.get_run(run.run_id).data.tags:
        run.set_tags({_STOPPED_TAG: "resumed"})  # an earlier leg stopped for budget; this one went on


def record_egress(job: PlacedJob, workspace: Workspace, run_id: str, gb: float) -> None:
    """A data move the job made (from ``job.moves_from``), priced at the plan's egress rate."""
    usd = job.egress_usd * (gb / job.moved_gb) if job.moved_gb else 0.0
    ledger_append(workspace.ledger_path, _entry("egress", job, run_id, usd, f"moved {gb:.6g} GB from {job.moves_from}"))


def _entry(kind: str, job: PlacedJob, run_id: str, usd: float, status: str, hours: float = 0.0) -> Entry:
    return Entry(kind=kind, run_id=run_id, experiment=job.experiment, model=job.name, site=job.site,  # type: ignore[arg-type]
                 offer=job.offer, usd=usd, status=status, hours=hours)


def stopped_for_budget(spec: JobSpec, run: TrackedRun, reason: str) -> BudgetError:
    """Tag the run as stopped for budget and say how to go on."""
    run.set_tags({_STOPPED_TAG: "true", f"{LINEAGE_PREFIX}stop_reason": reason})
    return BudgetError(
        f"run {run.run_id} of {spec.name!r} stopped for budget after its last checkpoint ({reason})",
        fix=f"raise placement.budget_usd or budgets.{spec.experiment_name}.usd, then run "
        f"`gravityml train JOB.yaml --resume`",
    )
