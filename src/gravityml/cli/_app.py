"""The typer application, its error handling and shared console helpers (layer 5)."""

from __future__ import annotations

import os
import re
import sys
import traceback
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
import typer
from rich.console import Console
from rich.table import Table

from gravityml.errors import GravityMLError

_typer_click: types.ModuleType
try:  # typer >= 0.20 carries its own copy of click; accept the exceptions of both
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - older typer uses click itself
    _typer_click = click.exceptions

_EXIT = (click.exceptions.Exit, typer.Exit)
_ABORT = (click.exceptions.Abort, typer.Abort)
_CLICK_ERROR = (click.ClickException, _typer_click.ClickException)
_NO_ARGS = tuple(
    m.NoArgsIsHelpError for m in (click.exceptions, _typer_click) if hasattr(m, "NoArgsIsHelpError")
)

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
if not console.is_terminal:  # piped output (logs, files, grep): tables as wide as their longest cell, never cut
    console.width = 10_000
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
        out.add_column(column, overflow="fold")  # a narrow terminal folds a long name; it never cuts it with ...
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


def check_bindable(host: str, port: int) -> None:
    """Bind (host, port) once before any model loads: a port in use or a foreign address is the user's to fix,
    and a server (uvicorn, the MLflow UI) would report it only after loading, with no line that says what to do."""
    import errno
    import socket

    from gravityml.errors import SpecError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise SpecError("--host", f"{host!r} cannot be resolved ({exc.strerror or exc})",
                        allowed="an address of this machine (127.0.0.1, 0.0.0.0, ::1)", got=host,
                        fix="use --host 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not "in use"
        try:
            probe.bind(address)
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            raise SpecError(
                "--port" if busy else "--host",
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                allowed="a free port" if busy else "an address of this machine (127.0.0.1, 0.0.0.0, ::1)",
                got=f"{host}:{port}",
                fix="choose another --port (or stop what listens there)" if busy else "use --host 127.0.0.1",
            ) from None


def usage_error(exc: Exception, args: Sequence[str] = ()) -> GravityMLError | None:
    """click's usage errors (unknown option, bad value, missing argument) in the four-part template."""
    from gravityml.errors import SpecError

    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", "gravityml") or "gravityml"
    fix = f"run `{command} --help` for what it takes"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    name = type(exc).__name__
    if name == "NoSuchOption":
        option = getattr(exc, "option_name", "")
        close = getattr(exc, "possibilities", None) or []
        hint = f" (did you mean {sorted(close)[0]!r}?)" if close else ""
        return SpecError(option, f"{command} has no such option{hint}", allowed=sorted(_options_of(ctx)), got=option,
                         fix=fix)
    if name == "MissingParameter":
        param = getattr(exc, "param", None)
        label = _label(param)
        return SpecError(label, f"{command} needs {label}", allowed=_type_words(param), got="nothing", fix=fix)
    if name == "BadParameter" or name == "BadOptionUsage" or name == "BadArgumentUsage":
        param = getattr(exc, "param", None)
        label = _label(param) if param is not None else getattr(exc, "option_name", "") or "argument"
        reason = re.sub(r"^Invalid value for '[^']*':\s*", "", message).rstrip(".")
        return SpecError(label, reason[:1].lower() + reason[1:], allowed=_type_words(param),
                         got=_given(label, args), fix=fix)
    if name == "UsageError":
        group = getattr(ctx, "command", None)
        if message.startswith("No such command") and hasattr(group, "list_commands"):
            quoted = re.search(r"'([^']*)'", message)
            return SpecError("", f"{command}: {message.rstrip('.')}", allowed=sorted(group.list_commands(ctx)),
                             got=quoted.group(1) if quoted else message, fix=fix)
        extra = re.search(r"argument\(?s?\)?:? '?\(?([^')]*)", message)
        return SpecError("", f"{command}: {message.rstrip('.')}", allowed="the arguments and options in --help",
                         got=extra.group(1) if extra else message, fix=fix)
    return None


def _label(param: Any) -> str:
    if param is None:
        return "argument"
    opts = getattr(param, "opts", None) or []
    longest = max(opts, key=len) if opts else None
    return longest if longest and longest.startswith("-") else str(getattr(param, "name", "argument")).upper()


def _given(label: str, args: Sequence[str]) -> str:
    """The value the command line gave option ``label`` (``--port 7`` or ``--port=7``)."""
    for i, arg in enumerate(args):
        if arg == label and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(label + "="):
            return arg.split("=", 1)[1]
    return "(see the command line)"


def _options_of(ctx: Any) -> list[str]:
    command = getattr(ctx, "command", None)
    return [o for p in getattr(command, "params", []) for o in getattr(p, "opts", []) if o.startswith("--")]


def _type_words(param: Any) -> Any:
    """What a click parameter accepts, in words (choices as a list)."""
    kind: Any = getattr(param, "type", None)  # click's ParamType; typer >= 0.20 keeps the annotation instead
    annotation: Any = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    words: dict[Any, str] = {int: "integer", float: "float", bool: "boolean", str: "text"}
    name = getattr(kind, "name", None) or words.get(
        annotation, "path" if annotation is not None and "Path" in str(annotation) else "value"
    )
    choices = getattr(kind, "choices", None)
    if choices:
        return list(choices)
    low = getattr(param, "min", None) if getattr(kind, "min", None) is None else kind.min
    high = getattr(param, "max", None) if getattr(kind, "max", None) is None else kind.max
    noun = {"integer": "integers", "float": "numbers"}.get(name)
    if noun and (low is not None or high is not None):
        if low is not None and high is not None:
            return f"{noun} from {low} to {high}"
        return f"{noun} >= {low}" if low is not None else f"{noun} <= {high}"
    return {"integer": "an integer", "float": "a number", "boolean": "true or false", "path": "a path",
            "text": "text"}.get(name, "a value")


def main(argv: Sequence[str] | None = None, *, entry: Callable[..., Any] | None = None) -> None:
    """Entry point: user errors print one line and exit 2; ``--debug`` shows the traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args or os.environ.get("GRAVITYML_DEBUG") == "1"
    # MLflow draws a progress bar on stderr for every model it downloads: a user error must stay one line.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
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
        usage = usage_error(exc, args)
        if usage is None:
            exc.show()
            sys.exit(exc.exit_code)
        _fail(usage.message, usage.exit_code)
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
