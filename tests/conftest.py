"""Shared fixtures: every test gets its own workspace (a real MLflow SQLite store in tmp_path).

Creating an MLflow SQLite store runs its schema migrations (seconds); the session makes one empty
store and each test starts from a copy of it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("MLFLOW_TRACKING_URI", None)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


# ---- every error the suite raises has its four parts (issue 10, point 9) ------------------------
# Each GravityMLError built while a test runs is recorded with the function that built it; a test
# during which one lacked a part (allowed, got or fix) fails, unless that function is listed in
# tests/errors_baseline.txt (sites known to lack one, a list that only shrinks: tools/error_parts.py).

def _record_incomplete_errors() -> list[tuple[str, str, list[str]]]:
    """Wrap GravityMLError.__init__ once (this file may be imported twice); the list it fills."""
    import sys

    from gravityml import errors

    original = errors.GravityMLError.__init__
    if hasattr(original, "incomplete"):
        return original.incomplete  # type: ignore[no-any-return]
    incomplete: list[tuple[str, str, list[str]]] = []

    def recording_init(self: errors.GravityMLError, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        present = {"allowed": self._has_allowed, "got": self._has_got, "fix": bool(self.fix)}
        missing = [part for part, ok in present.items() if not ok]
        if not missing:
            return
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.endswith(("errors.py", "conftest.py")):
            frame = frame.f_back
        if frame is None:
            return
        path = Path(frame.f_code.co_filename).as_posix()
        if "/src/gravityml/" not in path:
            return  # built by a test itself (tests of the template)
        site = path.split("/src/", 1)[-1]
        incomplete.append((f"{site}::{frame.f_code.co_name}", self.message, missing))

    recording_init.incomplete = incomplete  # type: ignore[attr-defined]
    errors.GravityMLError.__init__ = recording_init  # type: ignore[method-assign]
    return incomplete


_INCOMPLETE = _record_incomplete_errors()


def _baseline_sites() -> set[str]:
    path = ROOT / "tests" / "errors_baseline.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}


_BASELINE_SITES = _baseline_sites()


@pytest.fixture(autouse=True)
def _errors_have_four_parts() -> Iterator[None]:
    start = len(_INCOMPLETE)
    yield
    new = [e for e in _INCOMPLETE[start:] if e[0] not in _BASELINE_SITES]
    del _INCOMPLETE[start:]
    if new:
        site, message, missing = new[0]
        pytest.fail(
            f"{len(new)} error(s) built without all four parts; first at {site}, lacking {', '.join(missing)}: "
            f"{message!r}. To fix: pass allowed=, got= and fix= (gravityml.errors.GravityMLError)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gravityml.tracking import Workspace

    root = tmp_path_factory.mktemp("store-template")
    ws = Workspace.current(root)
    ws.client.search_experiments()  # creates the tables
    return root / "mlflow.db"


@pytest.fixture()
def workspace(tmp_path: Path, _empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator["Workspace"]:  # noqa: F821
    """A fresh workspace in tmp_path, set as GRAVITYML_HOME for the code under test."""
    from gravityml.tracking import Workspace

    home = tmp_path / "ws"
    home.mkdir()
    shutil.copy(_empty_store, home / "mlflow.db")
    monkeypatch.setenv("GRAVITYML_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield Workspace.current(home)


@pytest.fixture()
def cli(workspace: "Workspace", capsys: pytest.CaptureFixture[str]):  # noqa: F821
    """Run the gravityml CLI in-process: returns (exit code, stdout, stderr)."""
    from gravityml.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _write_spec(path: Path, **overrides: object) -> Path:
    """A small supervised spec (iris, logistic regression) with ``overrides`` merged in."""
    import yaml

    spec: dict[str, object] = {
        "name": "iris",
        "task": "supervised",
        "data": {"source": "sklearn:iris", "target": "target", "split": {"test": 0.25, "seed": 3}},
        "model": {"type": "logistic_regression"},
        "compute": {"accelerator": "cpu"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}  # type: ignore[dict-item]
        else:
            spec[key] = value
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture()
def write_spec():
    """``write_spec(path, **overrides)``: a small iris spec file with top-level keys overridden
    (mappings are merged one level deep)."""
    return _write_spec
