"""`gravityml precision` through the same gate as `train`: placed, enforced, run here, tracked (layer 4).

Comparing precisions trains the job several times, so it is a job like any other: it is planned
and enforced first (a policy that keeps the data elsewhere refuses it), it runs only where this
machine is the chosen site, and the comparison is an MLflow run with the placement lineage, the
report and the chart. No model version is registered: the comparison advises, `train` registers.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from gravityml.data import LOCAL_EXECUTOR, Catalog, load_dataset
from gravityml.errors import ExecutorError
from gravityml.execution._executor import workspace_for
from gravityml.execution._job import ensure_experiment
from gravityml.execution._placement import Placed, place
from gravityml.spec import JobSpec
from gravityml.tracking import LINEAGE_PREFIX, Workspace, start_run


def placed_here(
    spec: JobSpec,
    *,
    site: str | None = None,
    catalog: Catalog | str | Path | None = None,
    workspace: Workspace | None = None,
) -> Placed:
    """The job placed and enforced, when the chosen site is this machine's; else a one-line refusal."""
    placed = place(spec, site=site, catalog=catalog, workspace=workspace)
    if placed.site.executor != LOCAL_EXECUTOR:
        raise ExecutorError(
            f"`precision` measures this machine, and job {spec.name!r} is placed on site {placed.candidate.site!r}, "
            "which this machine is not at",
            allowed=[placed.catalog.here] if placed.catalog.here else [],
            got=placed.candidate.site,
            fix="run it on that site, or pass --site with the site this machine is at (policy permitting)",
        )
    return placed


def run_precision(
    spec: JobSpec,
    *,
    tolerance: float,
    epochs: int | None = None,
    site: str | None = None,
    catalog: Catalog | str | Path | None = None,
    workspace: Workspace | None = None,
) -> tuple[Any, str]:
    """Train ``spec`` at each precision here, once placement allows it; returns (report, MLflow run id)."""
    from gravityml.paradigms import TrainContext
    from gravityml.paradigms.deep._precision import compare_training

    placed = placed_here(spec, site=site, catalog=catalog, workspace=workspace)
    job = placed.job()
    ws = workspace_for(placed, workspace)
    ensure_experiment(ws, job)
    dataset = load_dataset(spec)
    lineage = {**job.plan, "site": placed.candidate.site, "jurisdiction": job.jurisdiction, "executor": "local",
               "host": socket.gethostname(), "purpose": "precision comparison"}
    tags = {f"{LINEAGE_PREFIX}{k}": str(v) for k, v in lineage.items()}
    with ws.scratch("precision") as tmp, start_run(ws, job.mlflow_experiment, run_name=f"{spec.name}-precision",
                                                   tags=tags) as run:
        ctx = TrainContext(spec=spec, workdir=Path(tmp), dataset=dataset)
        report = compare_training(ctx, dataset, tolerance=tolerance, epochs=epochs)
        run.log_text(json.dumps(report.to_dict(), indent=1), "precision.json")
        run.set_tags({f"{LINEAGE_PREFIX}recommended_precision": str(report.recommended)})
        for row in report.rows:
            run.log_metrics({f"precision/{row.precision}/metric": row.metric,
                             f"precision/{row.precision}/samples_per_s": row.samples_per_s})
    return report, run.run_id
