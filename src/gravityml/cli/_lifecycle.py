"""`gravityml monitor`, `retrain`, `models evaluate|rollback` and `lifecycle run`: keeping models up to date."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from gravityml.cli._app import app, console, models_app, status, table

lifecycle_app = typer.Typer(help="The monitor / retrain / evaluate / promote loop.", no_args_is_help=True)
app.add_typer(lifecycle_app, name="lifecycle")


def _thresholds(ref: str, spec: Path | None, flags: dict[str, Any]) -> Any:
    """Flags over the spec file's ``monitor:`` section over the one the version recorded, over defaults."""
    from gravityml.inference._monitor import Thresholds

    section: dict[str, Any] = {}
    if spec is not None:
        from gravityml.spec import load_spec

        loaded = load_spec(spec)
        section = loaded.monitor.model_dump() if loaded.monitor else {}
    elif not Path(ref).exists():
        from gravityml.errors import ModelError
        from gravityml.tracking import Workspace
        from gravityml.tracking._recorded import recorded_spec

        try:
            section = dict(recorded_spec(Workspace.current(), ref).get("monitor") or {})
        except ModelError:
            section = {}
    return Thresholds.from_mapping({**section, **{k: v for k, v in flags.items() if v is not None}})


def print_report(report: Any) -> None:
    rows = []
    for group, columns in (("feature", report.features), ("output", report.predictions)):
        for c in columns:
            rows.append((group, c.name, c.test, c.statistic, c.p_value, c.psi,
                         f"{c.missing_reference:.1%} -> {c.missing_current:.1%}",
                         "DRIFT" if c.drifted else "", c.note))
    console.print(table(f"{report.model_ref}: {report.rows} recent rows vs the training profile",
                        ["", "column", "test", "statistic", "p-value", "PSI", "missing", "drift", "note"], rows))
    if report.metrics:
        console.print(table("metrics on the labelled recent rows", ["metric", "training", "recent"],
                            [(k, v["training"], v["current"]) for k, v in sorted(report.metrics.items())]))
    for violation in report.violations:
        console.print(f"schema    {violation}")
    verdict = "DRIFT: " + "; ".join(report.reasons) if report.drifted else "no drift over the thresholds"
    console.print(f"verdict   {verdict}")
    if report.png:
        console.print(f"plot      {report.png}")
    if report.run_id:
        console.print(f"run       {report.run_id} (experiment {report.model_ref.split('/')[0]}-monitor)")


@app.command()
def monitor(
    ref: str = typer.Argument(..., help="NAME, NAME/VERSION, NAME@ALIAS or a model folder."),
    data: str | None = typer.Option(None, "--data", help="Recent rows: a file, a folder of files, or s3://..."),
    logs: str | None = typer.Option(None, "--logs", help="Prediction logs (serve/predict --log-predictions): a "
                                    "folder or an s3:// prefix."),
    version: str | None = typer.Option(None, "--version", help="With --logs: the logged version to compare, V or "
                                       "NAME/V, or 'all' (default: the monitored version's rows)."),
    role: str | None = typer.Option(None, "--role", help="With --logs: only rows logged as served, or as shadow "
                                    "(mirrored to a --shadow version), or all (default)."),
    spec: Path | None = typer.Option(None, "--spec", help="Take thresholds from this spec's monitor: section."),
    alpha: float | None = typer.Option(None, "--alpha", help="Family-wise significance of the tests (0.01)."),
    psi: float | None = typer.Option(None, "--psi", help="PSI a drifted column must reach too (0.2)."),
    max_drifted: int | None = typer.Option(None, "--max-drifted-features", help="Drifted features allowed (0)."),
    metric_drop: float | None = typer.Option(None, "--metric-drop", help="Allowed drop of a test metric (0.05)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON here."),
    png: Path | None = typer.Option(None, "--png", help="Write the drifted features' histograms here."),
    log_run: bool = typer.Option(True, "--log/--no-log", help="Log the check as an MLflow run."),
) -> None:
    """Compare recent data with the model's training profile; exit code 1 when drift is over threshold."""
    from gravityml.inference._monitor import monitor as monitor_

    thresholds = _thresholds(ref, spec, {"alpha": alpha, "psi": psi, "max_drifted_features": max_drifted,
                                         "metric_drop": metric_drop})
    with status(f"monitoring {ref}"):
        report = monitor_(ref, data=data, logs=logs, thresholds=thresholds, png=png, json_path=json_out,
                          log_run=log_run, version=version, role=role)
    print_report(report)
    if report.selection:
        console.print(f"compared  {report.selection}")
    if report.drifted:
        raise typer.Exit(1)


@app.command()
def retrain(
    ref: str = typer.Argument(..., help="The version to retrain: NAME, NAME/VERSION or NAME@ALIAS."),
    data: str | None = typer.Option(None, "--data", help="New (or appended) rows to train on."),
    site: str | None = typer.Option(None, "--site", help="Run on this site of the catalog (policy still applies)."),
    catalog: Path | None = typer.Option(None, "--catalog", help="Catalog file (default: gravityml.yaml)."),
) -> None:
    """Train the version's recorded spec again on new data; the result is an unpromoted challenger."""
    from gravityml.execution._retrain import retrain as retrain_

    with status(f"retraining {ref}"):
        result = retrain_(ref, data=data, site=site, catalog=catalog)
    metrics = {k: v for k, v in result.metrics.items() if k.startswith("test/")}
    console.print(table(f"{result.model_ref}: metrics", ["metric", "value"], sorted(metrics.items())))
    console.print(f"challenger {result.model_ref} (retrained from {result.lineage.get('retrained_from')}, not promoted)")
    console.print(f"placement  {result.lineage.get('site')} ({result.lineage.get('offer')})")
    console.print(f"next       gravityml models promote {result.model_ref} --alias production --if-better "
                  "--data HOLDOUT")


def print_evaluation(ev: Any) -> None:
    rows = [(m.name, m.champion, m.challenger, m.difference, f"[{m.low:.4f}, {m.high:.4f}]",
             "higher" if m.higher_is_better else "lower") for m in ev.metrics]
    console.print(table(f"{ev.challenger} vs {ev.champion} on {ev.rows} rows ({ev.confidence:.0%} bootstrap interval "
                        "of the difference)", ["metric", ev.champion, ev.challenger, "difference", "interval",
                                               "better"], rows))
    if ev.mcnemar:
        console.print(f"McNemar   champion only right {ev.mcnemar['champion_only_right']}, challenger only right "
                      f"{ev.mcnemar['challenger_only_right']}, p = {ev.mcnemar['p_value']:.4g}")
    console.print("latency   " + ", ".join(f"{k} {v:.4f} ms/row" for k, v in ev.latency_ms_per_row.items()))
    console.print("size      " + ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in ev.size_bytes.items()))


@models_app.command()
def evaluate(
    champion: str = typer.Argument(..., help="The serving version, e.g. NAME@production."),
    challenger: str = typer.Argument(..., help="The candidate, e.g. NAME/7."),
    data: str = typer.Option(..., "--data", help="Labelled holdout rows both are scored on."),
    confidence: float = typer.Option(0.95, "--confidence", help="Level of the bootstrap intervals."),
) -> None:
    """Score two versions on the same rows: metric differences with intervals, McNemar, latency, size."""
    from gravityml.inference._gate import evaluate as evaluate_

    with status(f"evaluating {challenger} against {champion}"):
        ev = evaluate_(champion, challenger, data, confidence=confidence)
    print_evaluation(ev)


@models_app.command()
def rollback(ref: str = typer.Argument(..., help="NAME@ALIAS to move back to its previous version.")) -> None:
    """Point an alias back at the version it named before the last promotion."""
    from gravityml.tracking import Workspace
    from gravityml.tracking._registry import rollback as rollback_

    left, now = rollback_(Workspace.current(), ref)
    console.print(f"{ref} -> version {now.version} (was {left.version})")


def gate(challenger: str, alias: str, data: str, margin: float, metric: str | None, confidence: float = 0.95) -> bool:
    """`models promote --if-better`: print the decision and its evidence; True when promoted."""
    from gravityml.inference._gate import promote_if_better

    with status(f"gating {challenger} for @{alias}"):
        decision = promote_if_better(challenger, alias, data, margin=margin, metric=metric, confidence=confidence)
    if decision.evaluation is not None:
        print_evaluation(decision.evaluation)
    verb = "promoted" if decision.promoted else "refused"
    console.print(f"decision  {verb}: {decision.reason}")
    name = decision.challenger.split("/")[0]
    console.print(f"{name}@{alias} -> {decision.challenger if decision.promoted else decision.champion or '(none)'}")
    return decision.promoted


# ---- the loop ------------------------------------------------------------------------------------


def _open_challenger(ws: Any, name: str, champion: Any) -> Any:
    """A version retrained from ``champion`` that no gate has decided on yet (so a rerun does not retrain)."""
    from gravityml.tracking import versions

    for mv in versions(ws, name):
        if mv.version > champion.version and mv.lineage.get("retrained_from") == champion.ref:
            return mv
    return None


def lifecycle_pass(name: str, spec_path: Path | None = None) -> dict[str, Any]:
    """One idempotent pass: monitor the champion, maybe retrain, evaluate, maybe promote."""
    from gravityml.errors import ModelNotFoundError, SpecError
    from gravityml.execution._retrain import retrain as retrain_
    from gravityml.inference._gate import promote_if_better
    from gravityml.inference._monitor import Thresholds
    from gravityml.inference._monitor import monitor as monitor_
    from gravityml.spec import load_spec, parse_spec
    from gravityml.tracking import ModelRef, Workspace, promote, resolve, start_run
    from gravityml.tracking._recorded import recorded_spec

    ws = Workspace.current()
    spec = load_spec(spec_path) if spec_path is not None else parse_spec(recorded_spec(ws, name))
    if spec.lifecycle is None:
        raise SpecError("lifecycle", f"the spec of {name!r} has no lifecycle: section", got=None,
                        fix="add lifecycle: {recent: ..., holdout: ...} to the spec (see docs/lifecycle.md)")
    life, base = spec.lifecycle, spec.base_dir

    def path(value: str | None) -> str | None:
        if value is None or "://" in value or value.startswith("sklearn:"):
            return value
        return str((base / value).resolve()) if not Path(value).is_absolute() else value

    alias = life.promote.alias
    decisions: list[tuple[str, str]] = []
    try:
        champion = resolve(ws, ModelRef(name, alias=alias))
    except ModelNotFoundError:
        latest = resolve(ws, name)
        promote(ws, latest.ref, alias)
        decisions.append(("promote", f"no version held @{alias}: {latest.ref} promoted as the first champion"))
        champion = resolve(ws, ModelRef(name, alias=alias))
    reasons: list[str] = []
    if life.recent or life.logs:
        thresholds = Thresholds.from_mapping(spec.monitor.model_dump() if spec.monitor else None)
        report = monitor_(champion.ref, data=path(life.recent), logs=path(life.logs), thresholds=thresholds)
        decisions.append(("monitor", ("drift: " + "; ".join(report.reasons)) if report.drifted
                          else f"no drift over the thresholds ({report.rows} rows), run {report.run_id}"))
        if report.drifted and life.retrain_when.drift:
            reasons.append("drift")
    else:
        decisions.append(("monitor", "skipped: lifecycle has neither recent nor logs"))
    age_days = (time.time() * 1000 - champion.created_ms) / 86_400_000
    if life.retrain_when.age_days is not None and age_days > life.retrain_when.age_days:
        reasons.append(f"age {age_days:.1f} days > {life.retrain_when.age_days}")
    challenger = _open_challenger(ws, name, champion)
    if challenger is not None and challenger.tags.get("lifecycle.gate.decision"):
        decided = challenger.tags["lifecycle.gate.decision"]
        why = f"skipped: {challenger.ref} was already retrained from {champion.ref} and {decided} by the gate"
        decisions.append(("retrain", why))
        challenger = None
    elif challenger is not None:
        decisions.append(("retrain", f"skipped: {challenger.ref} was already retrained from {champion.ref}; gating it"))
    elif reasons:
        result = retrain_(champion.ref, data=path(life.data))
        challenger = resolve(ws, result.model_ref)
        decisions.append(("retrain", f"{result.model_ref} trained because of {', '.join(reasons)}"))
    else:
        decisions.append(("retrain", "not needed"))
    if challenger is not None:
        holdout = path(life.holdout)
        assert holdout is not None
        decision = promote_if_better(challenger.ref, alias, holdout, margin=life.promote.margin,
                                     metric=life.promote.metric, confidence=life.promote.confidence)
        decisions.append(("promote" if decision.promoted else "refuse", decision.reason))
    now = resolve(ws, ModelRef(name, alias=alias))
    with start_run(ws, f"{name}-lifecycle", run_name=f"lifecycle-{name}", tags={
        "lifecycle.champion_before": champion.ref, "lifecycle.champion_after": now.ref,
        **{f"lifecycle.step.{i}.{step}": why[:5000] for i, (step, why) in enumerate(decisions)},
    }) as run:
        run.log_dict({"decisions": decisions, "champion_before": champion.ref, "champion_after": now.ref},
                     "lifecycle.json")
        run_id = run.run_id
    return {"decisions": decisions, "champion_before": champion.ref, "champion_after": now.ref, "run_id": run_id}


@lifecycle_app.command("run")
def lifecycle_run(
    name: str = typer.Argument(..., help="The registered model."),
    spec: Path | None = typer.Option(None, "--spec", help="Spec with the lifecycle: section (default: the "
                                     "one the latest version recorded)."),
    json_out: bool = typer.Option(False, "--json", help="Print the decisions as JSON."),
) -> None:
    """One pass of the loop: monitor, maybe retrain, evaluate, maybe promote; every decision in MLflow."""
    with status(f"lifecycle pass for {name}"):
        outcome = lifecycle_pass(name, spec)
    if json_out:
        typer.echo(json.dumps(outcome))
        return
    for step, why in outcome["decisions"]:
        console.print(f"{step:<9} {why}")
    console.print(f"champion  {outcome['champion_before']} -> {outcome['champion_after']} (run {outcome['run_id']})")


def prediction_logger(ref: str, target: str, sample_rate: float = 1.0, **options: Any) -> Any:
    """A :class:`PredictionLogger` for ``ref`` with the pii columns its training data's catalog entry names."""
    from gravityml.inference._predlog import LogConfig, PredictionLogger, pii_columns_for

    lineage: dict[str, str] = {}
    if not Path(ref).exists():
        from gravityml.tracking import Workspace, resolve

        lineage = resolve(Workspace.current(), ref).lineage
    return PredictionLogger(LogConfig(target=target, sample_rate=sample_rate, pii=pii_columns_for(lineage),
                                      **options))
