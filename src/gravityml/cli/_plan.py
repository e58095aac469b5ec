"""`gravityml plan`, `buy-vs-rent` and `costs`: where a job would run, owning versus renting, spend."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from gravityml.cli._app import app, console, table

_CATALOG = typer.Option(None, "--catalog", help="Catalog file (default: gravityml.yaml beside the job, ...).")


@app.command()
def plan(
    job: Path = typer.Argument(..., help="Job spec (YAML)."),
    site: str | None = typer.Option(None, "--site", help="Pin the job to this site."),
    catalog: Path | None = _CATALOG,
    as_json: bool = typer.Option(False, "--json", help="Print the whole plan as JSON."),
    png: Path | None = typer.Option(None, "--png", help="Write cost and time per candidate to this PNG."),
    show_all: bool = typer.Option(False, "--all", help="List every candidate (default: the first 15)."),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="Calibrate here when the spec has no estimate."),
) -> None:
    """Show where a job would run, what each candidate costs and takes, and why one is chosen."""
    from gravityml.execution import plan_job
    from gravityml.placement import COLUMNS, explain, plot, rejections, rows, to_json

    p = plan_job(job, site=site, catalog=catalog, measure=measure)
    limit = None if show_all else 15
    if as_json:
        typer.echo(json.dumps(to_json(p), indent=2))
    else:
        shown = rows(p, limit)
        title = f"plan for {p.demand.job}: {p.status} (objective {p.demand.objective}; catalog {p.table.catalog.path or 'none'})"
        # The table is wide by nature; let it overflow a narrow terminal rather than truncate names.
        wide = Console(highlight=False, width=max(console.width, 180))
        wide.print(table(title, COLUMNS, shown))
        allowed = int(p.allowed.sum())
        if len(shown) < allowed:
            console.print(f"... {allowed - len(shown)} more allowed candidates (--all lists them)")
        for rule, hit in rejections(p):
            listed = ", ".join(hit if show_all else hit[:4]) + ("" if show_all or len(hit) <= 4 else f", ... ({len(hit)})")
            console.print(f"rejected by {rule}: {listed}")
        console.print(explain(p))
        _search_forecast(job, p)
    if png is not None:
        plot(p, png)
        if not as_json:
            console.print(f"wrote {png}")


def _search_forecast(job: Path, p: object) -> None:
    """A spec with a tune: section: all trials' forecast at the chosen site against the budget."""
    from gravityml.spec import load_spec

    tune = load_spec(job).tune
    chosen = getattr(p, "chosen", None)
    if tune is not None and chosen is not None:
        console.print(tune.forecast(chosen.total_usd, p.demand.budget_usd).line())  # type: ignore[attr-defined]


@app.command("buy-vs-rent")
def buy_vs_rent_command(
    job: Path = typer.Argument(..., help="Job spec (YAML)."),
    runs_per_year: float | None = typer.Option(
        None, "--runs-per-year", "-n", help="Workload (default: placement.runs_per_year of the spec)."
    ),
    catalog: Path | None = _CATALOG,
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    png: Path | None = typer.Option(None, "--png", help="Write yearly cost against runs per year to this PNG."),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="Calibrate here when the spec has no estimate."),
) -> None:
    """Yearly cost of renting each cloud offer against owning hardware, with break-even and advice."""
    from gravityml.errors import SpecError
    from gravityml.execution import plan_job
    from gravityml.placement import buy_vs_rent, plot_buy_vs_rent
    from gravityml.spec import load_spec

    spec = load_spec(job)
    runs = runs_per_year or (spec.placement.runs_per_year if spec.placement else None)
    if runs is None or runs <= 0:
        raise SpecError(
            "placement.runs_per_year",
            "buy-vs-rent needs how often the job runs",
            allowed="a number of runs per year > 0",
            got=runs,
            fix="pass --runs-per-year N, or set placement.runs_per_year in the spec",
        )
    result = buy_vs_rent(plan_job(spec, catalog=catalog, measure=measure), runs)
    options = sorted(result.options, key=lambda o: (o.rejected_by is not None, o.yearly_usd(runs)))
    if as_json:
        typer.echo(json.dumps({
            "job": result.job,
            "runs_per_year": runs,
            "recommendation": result.recommendation,
            "break_even_runs_per_year": result.break_even_runs,
            "options": [
                {"site": o.site, "offer": o.offer, "kind": o.kind, "yearly_usd": o.yearly_usd(runs),
                 "per_run_usd": o.per_run_usd, "fixed_usd_per_year": o.fixed_usd_per_year, "rejected_by": o.rejected_by}
                for o in options
            ],
        }, indent=2))
    else:
        rows = [
            ("*" if o in (result.best_rent, result.best_own) else "", o.kind, o.site, o.offer,
             f"{o.yearly_usd(runs):,.0f}", f"{o.per_run_usd:,.2f}", f"{o.fixed_usd_per_year:,.0f}",
             o.rejected_by or "ok")
            for o in options
        ]
        console.print(table(
            f"buy vs rent for {result.job} at {runs:g} runs/year",
            ["", "kind", "site", "offer", "$/year", "$/run", "fixed $/year", "verdict"], rows,
        ))
        if result.break_even_runs is not None:
            console.print(f"break-even: {result.break_even_runs:,.0f} runs/year")
        console.print(f"recommendation: {result.recommendation}")
    if png is not None:
        plot_buy_vs_rent(result, png)
        if not as_json:
            console.print(f"wrote {png}")


@app.command()
def costs(
    by: str = typer.Option("experiment", "--by", help="Group by experiment, model or site."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Forecast against metered spend, from the cost ledger in the workspace."""
    from gravityml.errors import SpecError
    from gravityml.placement import ledger_read, summarise
    from gravityml.tracking import Workspace

    if by not in ("experiment", "model", "site"):
        raise SpecError("--by", f"{by!r} is not a grouping", allowed=["experiment", "model", "site"], got=by,
                        fix="use one of the allowed values")
    ws = Workspace.current()
    groups = summarise(ledger_read(ws.ledger_path), by)
    if as_json:
        typer.echo(json.dumps(groups, indent=2))
        return
    if not groups:
        console.print(f"no costs recorded yet in {ws.ledger_path} (train a job first)")
        return
    rows = [(g[by], g["runs"], f"{g['forecast_usd']:.4f}", f"{g['metered_usd']:.4f}") for g in groups]
    total = (sum(g["forecast_usd"] for g in groups), sum(g["metered_usd"] for g in groups))
    rows.append(("total", sum(g["runs"] for g in groups), f"{total[0]:.4f}", f"{total[1]:.4f}"))
    console.print(table(f"costs by {by} ({ws.ledger_path})", [by, "runs", "forecast $", "metered $"], rows))
