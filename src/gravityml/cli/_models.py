"""`gravityml models list|show|promote|compare`, `predict` and `ui`."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import typer

from gravityml.cli._app import app, check_bindable, console, models_app, status, table


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M") if ms else ""


@models_app.command("list")
def list_() -> None:
    """Every registered model with its latest version and aliases."""
    from gravityml.tracking import Workspace, list_models

    ws = Workspace.current()
    rows = list_models(ws)
    if not rows:
        console.print(f"no models registered in {ws.tracking_uri} yet; train one with `gravityml train JOB.yaml`")
        return
    console.print(
        table(
            "registered models",
            ["name", "latest", "versions", "aliases", "task", "model type", "updated"],
            [
                (
                    r["name"],
                    r["latest"],
                    r["versions"],
                    ", ".join(f"{a}->v{v}" for a, v in sorted(r["aliases"].items())),
                    r["task"],
                    r["model_type"],
                    _when(r["updated_ms"]),
                )
                for r in rows
            ],
        )
    )


@models_app.command()
def show(
    ref: str = typer.Argument(..., help="NAME, NAME/VERSION or NAME@ALIAS."),
    all_versions: bool = typer.Option(False, "--all", help="Every version's table, newest first."),
) -> None:
    """The version a reference names (latest for a bare NAME) with metrics and lineage; --all for every version."""
    from gravityml.tracking import ModelRef, Workspace, resolve, run_metrics, versions

    ws = Workspace.current()
    parsed = ModelRef.parse(ref)
    chosen = resolve(ws, parsed)  # raises the not-found error with what exists
    every = versions(ws, parsed.name)
    for mv in every if all_versions else [chosen]:
        metrics = run_metrics(ws, mv.run_id)
        headline = {k: v for k, v in metrics.items() if k.startswith("test/")}
        console.print(f"[bold]{mv.ref}[/]  aliases: {', '.join(mv.aliases) or '-'}  created {_when(mv.created_ms)}  run {mv.run_id}")
        lineage = {k: v for k, v in mv.lineage.items() if k != "precision" or _uses_precision(mv.lineage)}
        rows = [(k, v) for k, v in sorted(lineage.items())] + sorted(headline.items())
        console.print(table(None, ["key", "value"], rows))
    others = [mv for mv in every if mv.version != chosen.version]
    if others and not all_versions:
        listed = ", ".join(f"v{mv.version}" + (f" ({', '.join(mv.aliases)})" if mv.aliases else "") for mv in others[:10])
        more = f" and {len(others) - 10} more" if len(others) > 10 else ""
        console.print(f"other versions: {listed}{more}; `gravityml models show {parsed.name} --all` shows them all")


def _uses_precision(lineage: dict[str, str]) -> bool:
    """Precision means something only for torch-backed models (a scikit-learn model has no fp32 choice)."""
    from gravityml.spec import MODEL_TYPES

    row = MODEL_TYPES.get(str(lineage.get("model_type")))
    return row is None or row.backend == "torch"


@models_app.command()
def promote(
    ref: str = typer.Argument(..., help="NAME/VERSION to promote."),
    alias: str = typer.Option("production", "--alias", help="Alias to point at the version."),
    if_better: bool = typer.Option(False, "--if-better", help="Only if it beats the alias's version on --data."),
    data: str | None = typer.Option(None, "--data", help="Labelled holdout rows for --if-better."),
    margin: float = typer.Option(0.0, "--margin", help="--if-better: how much better (in the metric's units)."),
    metric: str | None = typer.Option(None, "--metric", help="--if-better: metric to decide on (accuracy / rmse)."),
) -> None:
    """Point an alias (production, staging, ...) at a version (--if-better: only past the gate)."""
    from gravityml.tracking import Workspace
    from gravityml.tracking import promote as promote_

    if if_better or data is not None:
        from gravityml.cli._lifecycle import gate
        from gravityml.errors import SpecError

        if data is None:
            raise SpecError("--data", "--if-better needs labelled holdout rows", allowed="a file of labelled rows",
                            got=None, fix="add --data HOLDOUT.csv")
        gate(ref, alias, data, margin, metric)
        return
    mv = promote_(Workspace.current(), ref, alias)
    console.print(f"{mv.name}@{alias} -> version {mv.version}")


@models_app.command()
def compare(
    first: str = typer.Argument(..., help="A model reference."),
    second: str = typer.Argument(..., help="Another model reference."),
) -> None:
    """Metrics and lineage of two versions side by side, with the difference."""
    from gravityml.tracking import Workspace, resolve, run_metrics

    ws = Workspace.current()
    a, b = resolve(ws, first), resolve(ws, second)
    ma, mb = run_metrics(ws, a.run_id), run_metrics(ws, b.run_id)
    rows: list[tuple[str, object, object, object]] = []
    for key in sorted(set(ma) | set(mb)):
        if key.startswith("data/"):
            continue
        va, vb = ma.get(key), mb.get(key)
        rows.append((key, va, vb, (vb - va) if va is not None and vb is not None else None))
    for key in sorted(set(a.lineage) | set(b.lineage)):
        la, lb = a.lineage.get(key, ""), b.lineage.get(key, "")
        rows.append((key, la, lb, "" if la == lb else "differs"))
    console.print(table(f"{a.ref} vs {b.ref}", ["", a.ref, b.ref, "difference"], rows))


@app.command()
def predict(
    model: str = typer.Argument(..., help="NAME, NAME/VERSION, NAME@ALIAS or a model folder."),
    input: str = typer.Argument(..., help="Rows to score: CSV, Parquet or JSON Lines (with --site: a folder or "  # noqa: A002
                                "s3:// prefix of them)."),
    output: str = typer.Option(..., "-o", "--output", help="Where to write the scored rows (.csv, .parquet, .jsonl; "
                               "with --site: a folder or s3:// prefix, Parquet files and _SUCCESS)."),
    proba: bool = typer.Option(False, "--proba", help="Add every class's probability (proba_<class>)."),
    only_predictions: bool = typer.Option(False, "--only-predictions", help="Leave the input columns out."),
    log_predictions: str | None = typer.Option(None, "--log-predictions", help="Also log inputs and outputs as "
                                               "Parquet to this folder or s3:// prefix (for `gravityml monitor`)."),
    log_sample_rate: float = typer.Option(1.0, "--log-sample-rate", help="Share of rows logged."),
    site: str | None = typer.Option(None, "--site", help="Score on this site's cluster (Ray Data, or Spark for a Spark site)."),
    catalog: Path | None = typer.Option(None, "--catalog", help="Catalog file, with --site (default: gravityml.yaml "
                                        "here or in GRAVITYML_HOME)."),
    concurrency: int | None = typer.Option(None, "--concurrency", help="Scoring actors, with --site (default: half "
                                           "the cluster's CPUs)."),
    batch_size: int = typer.Option(4096, "--batch-size", help="Rows per batch an actor scores, with --site."),
) -> None:
    """Score a file with a model: prediction and confidence per row, written atomically."""
    from gravityml.inference import predict_file

    if site is not None:
        _predict_on_site(model, input, output, site=site, catalog=catalog, concurrency=concurrency,
                         batch_size=batch_size, proba=proba, keep_input=not only_predictions,
                         log_predictions=log_predictions)
        return
    logger = None
    if log_predictions is not None:
        from gravityml.cli._lifecycle import prediction_logger

        logger = prediction_logger(model, log_predictions, log_sample_rate)
    try:
        with status(f"scoring {input} with {model}"):
            result = predict_file(model, input, output, proba=proba, keep_input=not only_predictions, logger=logger)
    finally:
        if logger is not None:
            logger.close()
    console.print(f"scored {result.rows} rows with {result.model_ref} -> {result.output}")
    if logger is not None:
        console.print(f"logged {logger.logged_rows} rows to {', '.join(logger.files) or log_predictions}"
                      + (f" ({logger.dropped_rows} dropped)" if logger.dropped_rows else ""))


def _predict_on_site(model: str, input_uri: str, output_uri: str, *, site: str, catalog: Path | None,
                     concurrency: int | None, batch_size: int, proba: bool, keep_input: bool,
                     log_predictions: str | None) -> None:
    """`predict --site`: Ray Data (or Spark) on the site's cluster, output published whole or not at all."""
    from gravityml.errors import SpecError
    from gravityml.execution._raydata import predict_on_site

    if log_predictions is not None:
        raise SpecError("--log-predictions", "is not available with --site", allowed="--site or --log-predictions",
                        got=log_predictions,
                        fix="score on the site without it, or log from `gravityml serve`")
    from gravityml.execution._sparkscore import predict_on_spark_site, spark_site

    if spark_site(site, catalog) is not None:  # executor: {spark: MASTER}: the site's Spark cluster scores
        done = predict_on_spark_site(model, input_uri, output_uri, site=site, catalog=catalog, concurrency=concurrency,
                                     batch_size=batch_size, proba=proba, keep_input=keep_input)
        console.print(f"scored {done.rows} rows of {done.files} files with {done.model_ref} on site {site!r} (Spark "
                      f"{done.spark_app_id}, {done.engine}) -> {done.output} ({len(done.outputs)} Parquet files, _SUCCESS)")
        return
    result = predict_on_site(model, input_uri, output_uri, site=site, catalog=catalog, concurrency=concurrency,
                             batch_size=batch_size, proba=proba, keep_input=keep_input)
    spread = ", ".join(f"{node[:8]}: {rows}" for node, rows in sorted(result.rows_by_node.items()))
    console.print(f"scored {result.rows} rows of {result.files} files with {result.model_ref} on site {site!r} "
                  f"-> {result.output} ({len(result.outputs)} Parquet files, _SUCCESS; rows by node {spread})")


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(5000, help="Port."),
) -> None:
    """Start the MLflow UI on the workspace's store (Ctrl-C stops it)."""
    from gravityml.tracking import Workspace

    if not 0 <= port <= 65535:
        from gravityml.errors import SpecError

        raise SpecError("--port", "is not a TCP port", allowed="0-65535", got=port, fix="choose a port such as 5000")
    check_bindable(host, port)
    ws = Workspace.current().ensure()
    _ = ws.client  # creates the store if it does not exist yet
    console.print(f"MLflow UI for {ws.tracking_uri} on http://{host}:{port} (Ctrl-C to stop)")
    try:
        raise typer.Exit(subprocess.call(ws.ui_command(host, port)))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
