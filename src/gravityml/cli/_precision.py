"""`gravityml precision`: accuracy, speed and memory of a torch or Keras model at each precision, with advice.

``--model`` evaluates a registered model instead of training: a torch one under ``torch.autocast``
(or in float64), a Keras one rebuilt under each precision's dtype policy, as training uses them."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gravityml.cli._app import app, console, status, table


@app.command()
def precision(
    job: Path = typer.Argument(..., help="Job spec (YAML) of a deep-learning model (mlp, cnn, text, torch; keras or framework: tensorflow)."),
    model: str | None = typer.Option(
        None, "--model", help="Evaluate this registered model (NAME, NAME/3, NAME@alias) instead of training."
    ),
    tolerance: float = typer.Option(
        0.5, "--tolerance", min=0.0, help="Accuracy (or R2) the cheaper precision may lose, in percentage points."
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Train this many epochs (default: the spec's)."),
    output: Path | None = typer.Option(None, "-o", "--output", help="PNG chart path (default: precision-NAME.png)."),
) -> None:
    """Train (or evaluate) at each precision this hardware offers; recommend the cheapest good one."""
    from gravityml.data import atomic_write, load_dataset
    from gravityml.errors import SpecError
    from gravityml.paradigms.deep._precision import chart_png, compare_inference
    from gravityml.spec import MODEL_TYPES, load_spec

    spec = load_spec(job)
    if MODEL_TYPES[spec.model.type].backend not in ("torch", "tensorflow"):
        raise SpecError(
            "model.type",
            f"precision compares torch-backed models (and Keras ones); {spec.model.type!r} is {MODEL_TYPES[spec.model.type].backend}",
            allowed=sorted(n for n, r in MODEL_TYPES.items() if r.backend in ("torch", "tensorflow")),
            got=spec.model.type,
            fix="use a spec whose model.type is mlp, cnn, text, torch or keras",
        )
    chart = output or Path(f"precision-{spec.name}.png")
    if model is not None:
        from gravityml.execution._precision import placed_here
        from gravityml.inference import load
        from gravityml.models._keras import KerasModel
        from gravityml.models._torch import TorchModel

        placed_here(spec)  # the data is read here: placement must allow it, as for training
        dataset = load_dataset(spec)
        loaded = load(model)
        if not isinstance(loaded, TorchModel | KerasModel):
            raise SpecError(
                "--model",
                f"{model!r} is a {loaded.flavor} model; precision compares torch and keras models",
                allowed=["torch", "keras"],
                got=loaded.flavor,
                fix="name a model trained with model.type mlp, cnn, text, torch or keras",
            )
        test = dataset.split().test
        with status(f"evaluating {model} at each precision"):
            report = compare_inference(loaded, test[dataset.features], test[dataset.target], tolerance=tolerance / 100)
    else:
        from gravityml.execution._precision import run_precision

        with status(f"training {spec.name} at each precision"):  # placed and enforced like `train`, then tracked
            report, run_id = run_precision(spec, tolerance=tolerance / 100, epochs=epochs)
        console.print(f"run         {run_id} (placement, report and chart tracked like a training run)")
    rows = []
    fp32 = next((r.samples_per_s for r in report.rows if r.precision == "fp32"), None)
    for row in report.rows:
        rows.append(
            (
                ("* " if row.precision == report.recommended else "  ") + row.precision,
                f"{row.metric:.4f}",
                f"{100 * row.difference:+.2f}",
                f"{row.samples_per_s:,.0f}",
                f"{row.samples_per_s / fp32:.2f}x" if fp32 else "",
                f"{row.peak_memory_mb:,.0f}" if row.peak_memory_mb is not None else "n/a",
                f"{row.seconds:.1f}",
            )
        )
    reference = report.rows[0].precision
    reference_row = "fp32" if fp32 else reference
    console.print(
        table(
            f"{spec.name}: {report.mode} at each precision on {report.hardware}",
            ["precision", f"test {report.metric}", f"diff vs {reference} (pp)", "samples/s", "vs fp32", "peak MB", "seconds"],
            rows,
        )
    )
    for name, why in report.skipped.items():
        console.print(f"  {name} not trained: {why}")
    if report.mode == "train":
        console.print(f"advice took {report.seconds:.1f} s ({report.seconds / max(report.reference_seconds, 1e-9):.2f}x the "
                      f"{reference_row} training, probes included)")
    console.print(f"recommended {report.recommended}  ({report.reason}; tolerance {tolerance:g} pp)")
    chart_png(report, chart, f"{spec.name} ({spec.model.type})")
    report_json = chart.with_suffix(".json")
    atomic_write(report_json, lambda tmp: tmp.write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8"))
    console.print(f"chart       {chart}\nreport      {report_json}")
    console.print(f"use it      compute: {{precision: {report.recommended}}} in {job}, or precision: auto")
