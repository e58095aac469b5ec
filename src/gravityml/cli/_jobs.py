"""`gravityml train`, `validate` and `spec-schema`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gravityml.cli._app import app, console, fmt, status, table

if TYPE_CHECKING:
    from gravityml.spec import JobSpec


@app.command()
def train(
    job: Path = typer.Argument(..., help="Job spec (YAML)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint of this job."),
    site: str | None = typer.Option(None, "--site", help="Run on this site of the catalog (policy still applies)."),
    catalog: Path | None = typer.Option(None, "--catalog", help="Catalog file (default: gravityml.yaml beside the job)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Place the job and say what would run it; record nothing."),
) -> None:
    """Train a job, track the run in MLflow and register a new model version."""
    from gravityml.execution import run_job
    from gravityml.spec import load_spec

    spec = load_spec(job)
    if dry_run:
        _dry_run(spec, site, catalog)
        return
    with status(f"training {spec.name} ({spec.task}, {spec.model.type})"):
        result = run_job(spec, resume=resume, site=site, catalog=catalog)
    if result.already_registered:
        console.print(f"resume    nothing to do: run {result.run_id} had already registered {result.model_ref}; "
                      "it is finished (train without --resume for a new version)")
        return
    metrics = {k: v for k, v in result.metrics.items() if not k.startswith(("train/", "data/"))}
    console.print(table(f"{result.name}: metrics", ["metric", "value"], sorted(metrics.items())))
    console.print(f"model     {result.model_ref} registered (task {result.lineage.get('task')}, "
                  f"{result.lineage.get('model_type')})")
    console.print(f"run       {result.run_id} in experiment {result.experiment!r}")
    if result.lineage.get("search_run_id"):
        ran_ = result.lineage
        console.print(f"search    best of trial {ran_.get('best_trial')} {ran_.get('best_params')} by "
                      f"{ran_.get('search_metric')}; {ran_.get('trials_complete')} complete, {ran_.get('trials_pruned')} "
                      f"pruned, {ran_.get('trials_failed')} failed ({ran_.get('stop_reason')}); parent run "
                      f"{ran_.get('search_run_id')} (plots/search.png)")
    console.print(f"placement {result.lineage.get('planned_site')} ({result.lineage.get('jurisdiction')}, "
                  f"{result.lineage.get('offer')}), forecast {result.lineage.get('forecast_usd')} $")
    ran = result.lineage
    console.print(f"ran at    {ran.get('site')} on {ran.get('executor')}"
                  + (f" {ran.get('cluster')} node {ran.get('ray_node_id', '')[:12]} job {ran.get('ray_job_id')}"
                     if ran.get("executor") == "ray" else "") + f", host {ran.get('host')}")
    console.print(f"artefacts {result.artifact_uri}")
    fingerprint = str(result.lineage.get("data_fingerprint") or "")
    console.print(f"data      {result.lineage.get('data_uri')} ({fingerprint[:23]}...)"
                  if fingerprint else f"data      {result.lineage.get('data_uri')}")
    console.print(f"store     {result.tracking_uri}")
    console.print(f"next      gravityml predict {result.name} ROWS.csv -o scored.csv | gravityml models show "
                  f"{result.name} | gravityml ui")


def _dry_run(spec: object, site: str | None, catalog: Path | None) -> None:
    from gravityml.errors import ExecutorError
    from gravityml.execution import executor_for, place

    placed = place(spec, site=site, catalog=catalog)  # type: ignore[arg-type]
    c = placed.candidate
    console.print(f"placement {c.site} ({placed.site.jurisdiction}, {c.offer}, {c.market}), forecast "
                  f"{c.total_usd:.4f} $, {c.finish_hours:.3g} h")
    try:
        executor = executor_for(placed)
        where = placed.site.executor or placed.site.launcher
        console.print(f"executor  {executor.kind} ({where}); dry run: nothing submitted, nothing recorded")
    except ExecutorError as exc:
        console.print(f"executor  none: {exc.what}; dry run: nothing recorded")


@app.command()
def validate(job: Path = typer.Argument(..., help="Job spec (YAML).")) -> None:
    """Check a job spec without running it; print what it asks for."""
    from gravityml.spec import MODEL_TYPES, load_spec

    spec = load_spec(job)
    row = MODEL_TYPES[spec.model.type]
    backend = "tensorflow" if spec.model.framework == "tensorflow" else row.backend  # a built-in net on Keras
    console.print(f"{job}: valid")
    rows = [
        ("name", spec.name),
        ("task", spec.task),
        ("model", f"{spec.model.type} ({backend}: {row.summary})"),
        ("data", spec.data.source if spec.data else f"env {spec.env.id or spec.env.entry_point}" if spec.env else ""),
        ("target", spec.data.target if spec.data else ""),
        ("compute", f"{spec.compute.accelerator} x{spec.compute.devices}"
                    + (f", {spec.compute.precision}" if backend in ("torch", "tensorflow") else "")),  # sklearn has none
    ]
    if spec.model.entry_point:
        rows.insert(3, ("entry point", spec.model.entry_point))
    console.print(table(None, ["key", "value"], [(k, fmt(v)) for k, v in rows]))
    _print_params(spec)


def _print_params(spec: JobSpec) -> None:
    """The model type's parameters (its schema), with the values this spec gives marked."""
    from gravityml.spec import MODEL_TYPES, load_entry_point, param_schema
    from gravityml.spec._params import factory_schema

    row = MODEL_TYPES[spec.model.type]
    if row.entry_point and spec.model.entry_point:
        schema = factory_schema(load_entry_point(spec.model.entry_point, base_dir=spec.base_dir), row)
    else:
        schema = param_schema(spec.model.type, spec.task)
    given = spec.model.params
    lines = [
        (("* " if name in given else "  ") + name, fmt(given[name]) if name in given else p.default, p.source, p.allowed[:80])
        for name, p in sorted(schema.items())
    ]
    title = f"model.params of {spec.model.type} (* given in the spec)"
    console.print(table(title, ["param", "value / default", "from", "allowed"], lines))


@app.command("spec-schema")
def spec_schema(
    output: Path | None = typer.Option(None, "-o", "--output", help="Write to this file instead of stdout."),
) -> None:
    """Print the JSON Schema of the job spec (for editors that validate YAML)."""
    from gravityml.data import atomic_write
    from gravityml.spec import spec_json_schema

    text = spec_json_schema()
    if output is not None:
        from gravityml.data import check_folder_writable

        check_folder_writable(output.parent, role="--output")
    if output is None:
        typer.echo(text)
        return
    atomic_write(output, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
    console.print(f"wrote {output}")
