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
