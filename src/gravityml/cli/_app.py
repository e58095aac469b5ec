"""The typer application, its error handling and shared console helpers (layer 5)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
import typer

try:  # typer >= 0.20 carries its own copy of click; accept the exceptions of both
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - older typer uses click itself
    _typer_click = click.exceptions

_EXIT = (click.exceptions.Exit, typer.Exit)
_ABORT = (click.exceptions.Abort, typer.Abort)
_CLICK_ERROR = (click.ClickException, _typer_click.ClickException)
_NO_ARGS = tuple(
    getattr(m, "NoArgsIsHelpError") for m in (click.exceptions, _typer_click) if hasattr(m, "NoArgsIsHelpError")
)
from rich.console import Console
from rich.table import Table

from gravityml.errors import GravityMLError

app = typer.Typer(
    name="gravityml",
    help="Train and serve machine-learning models where your data lives.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
models_app = typer.Typer(help="List, inspect, promote and compare registered models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

console = Console(highlight=False, soft_wrap=True)
if not console.is_terminal:  # piped output (logs, files): wide enough that tables do not fold
    console.width = 120
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of errors."),
) -> None:
    _state["debug"] = debug or _state["debug"]


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    out = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*(fmt(v) for v in row))
    return out


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"
    if value is None:
        return ""
    return str(value)


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner on a terminal; nothing when output is piped (CI logs stay clean)."""
    if err_console.is_terminal:
        with err_console.status(message):
            yield
    else:
        yield


def _fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    sys.exit(code)


def main(argv: Sequence[str] | None = None, *, entry: Callable[..., Any] | None = None) -> None:
    """Entry point: user errors print one line and exit 2; ``--debug`` shows the traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args or os.environ.get("GRAVITYML_DEBUG") == "1"
    try:
        code = (entry or app)(args=args, prog_name="gravityml", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except GravityMLError as exc:
        if _state["debug"]:
            traceback.print_exc()
        _fail(exc.message, exc.exit_code)
    except _EXIT as exc:
        sys.exit(exc.exit_code)
    except _ABORT:
        _fail("aborted", 130)
    except _NO_ARGS:
        sys.exit(0)  # the help text is already printed
    except _CLICK_ERROR as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # a bug of ours, not the user's: say so, keep it to one line
        if _state["debug"]:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(
            f"internal error: {type(exc).__name__}: {first} (a bug in gravityml; "
            "rerun with --debug for the traceback and report it)",
            1,
        )
