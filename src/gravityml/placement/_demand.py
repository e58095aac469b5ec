"""What a job asks of a site: its work, its hardware, its data and the limits it must respect."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gravityml.data import Catalog, dataset_size_gb, local_size_gb
from gravityml.placement._hardware import hardware
from gravityml.spec import MODEL_TYPES, JobSpec


@dataclass(frozen=True)
class Calibration:
    """A short run measured here: ``seconds`` for a ``fraction`` of the job's work."""

    seconds: float
    fraction: float
    what: str  # "256 of 4,000 rows", "512 of 100,000 timesteps"

    @property
    def hours_here(self) -> float:
        return self.seconds / self.fraction / 3600.0


@dataclass(frozen=True)
class Demand:
    """One job's request, in units the planner needs; every limit says where it came from.

    ``work_tflop_hours`` is hours x FP32 TFLOP/s of the hardware the estimate was made on, so the
    run time on an offer is ``work / (tflops per device x devices)``.
    """

    job: str
    experiment: str
    work_tflop_hours: float
    basis: str
    devices: int = 1
    cpu_only: bool = False
    needs_gpu: bool = False
    spark: bool = False  # a spark_* model: a Spark site's executors all take it; only such jobs go there
    dataset: str | None = None
    home_site: str | None = None
    size_gb: float = 0.0
    size_known: bool = True  # False: no size_gb and none could be read, so moving it cannot be priced
    tags: tuple[str, ...] = ()
    objective: str = "cost"
    budget_usd: float | None = None
    budget_basis: str = ""
    deadline_hours: float | None = None
    site: str | None = None
    spot: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def evolve(self, **changes: object) -> Demand:
        return replace(self, **changes)  # type: ignore[arg-type]


def remaining_budget(
    spec: JobSpec, catalog: Catalog, spent_usd: float
) -> tuple[float | None, str]:
    """The tighter of the spec's budget and what is left of the experiment's budget."""
    options: list[tuple[float, str]] = []
    if spec.placement and spec.placement.budget_usd is not None:
        options.append((spec.placement.budget_usd, f"placement.budget_usd {spec.placement.budget_usd:g}"))
    cap = catalog.budgets.get(spec.experiment_name)
    if cap is not None:
        left = max(cap.usd - spent_usd, 0.0)
        options.append((left, f"experiment {spec.experiment_name!r}: {cap.usd:g} budget - {spent_usd:.2f} spent"))
    if not options:
        return None, "no budget"
    return min(options)


def demand_for(
    spec: JobSpec,
    catalog: Catalog,
    *,
    calibration: Calibration | None = None,
    spent_usd: float = 0.0,
    site: str | None = None,
) -> Demand:
    """The :class:`Demand` of ``spec``: work from ``placement.estimate`` or a measured calibration."""
    placement = spec.placement
    if placement is not None and placement.estimate is not None:
        est = placement.estimate
        hw = hardware(est.hardware)
        work = est.hours * hw.tflops * est.devices
        basis = f"placement.estimate: {est.hours:g} h on {est.devices} x {est.hardware} ({hw.tflops:.3g} TFLOP/s each)"
    elif calibration is not None:
        here = hardware("this-machine")
        work = calibration.hours_here * here.tflops
        basis = (f"measured here: {calibration.seconds:.2f} s for {calibration.what}, so {calibration.hours_here:.3g} h "
                 f"on this machine ({here.tflops:.3g} TFLOP/s, numpy GEMM)")
    else:
        work, basis = 0.0, "no estimate (add placement.estimate, or plan with calibration)"
    backend = MODEL_TYPES[spec.model.type].backend
    accelerator = spec.compute.accelerator
    dataset = home = None
    size_gb, known = 0.0, True
    tags: tuple[str, ...] = ()
    if spec.data is not None:
        entry = catalog.dataset_for(spec.data.source)
        if entry is not None:
            dataset, ds = entry
            measured = dataset_size_gb(ds, catalog.sites[ds.site].storage)
            home, size_gb, tags, known = ds.site, measured or 0.0, tuple(ds.tags), measured is not None
        else:
            size_gb = local_size_gb(spec.data.source, spec.base_dir)
    budget, budget_basis = remaining_budget(spec, catalog, spent_usd)
    return Demand(
        job=spec.name,
        experiment=spec.experiment_name,
        work_tflop_hours=work,
        basis=basis,
        devices=spec.compute.devices,
        cpu_only=accelerator == "cpu" or backend in ("sklearn", "spark"),
        needs_gpu=accelerator == "cuda",
        spark=backend == "spark",
        dataset=dataset,
        home_site=home,
        size_gb=size_gb,
        size_known=known,
        tags=tags,
        objective=placement.objective if placement else "cost",
        budget_usd=budget,
        budget_basis=budget_basis,
        deadline_hours=placement.deadline_hours if placement else None,
        site=site or (placement.site if placement else None),
        spot=bool(placement and placement.spot),
    )
