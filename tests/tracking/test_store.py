"""The embedded store under concurrency and kills: real `gravityml` processes on a new workspace."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gravityml.errors import WorkspaceError
from gravityml.tracking import Workspace
from gravityml.tracking._store import STORE_FILE, inspect_store


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["GRAVITYML_HOME"] = str(home)
    return env


def _start(home: Path, *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gravityml", *args],
        env=_env(home),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_eight_commands_started_together_on_a_new_workspace_all_succeed(tmp_path: Path, write_spec) -> None:
    home = tmp_path / "ws"  # does not exist yet: every command races to create it
    specs = [write_spec(tmp_path / f"{n}.yaml", name=n) for n in ("iris-a", "iris-b")]
    commands = [("train", str(specs[i % 2])) for i in range(4)] + [("models", "list")] * 4
    procs = [_start(home, *c, cwd=tmp_path) for c in commands]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    for command, (code, _, err) in zip(commands, results):
        assert code == 0, f"{command}: {err}"

    ws = Workspace.current(home)
    from gravityml.tracking import versions

    assert [v.version for v in versions(ws, "iris-a")] == [2, 1]
    assert [v.version for v in versions(ws, "iris-b")] == [2, 1]
    runs = ws.client.search_runs([ws.experiment_id("iris-a"), ws.experiment_id("iris-b")])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    assert inspect_store(home / STORE_FILE) is None
    mode = sqlite3.connect(home / STORE_FILE).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("delay_s", [0.0, 0.3, 1.0])
def test_a_kill_during_first_store_creation_never_bricks_the_workspace(tmp_path: Path, delay_s: float) -> None:
    home = tmp_path / "ws"
    proc = _start(home, "models", "list", cwd=tmp_path)
    # Kill while the store is being built: once its temporary file exists, after `delay_s`.
    building = _wait_for(lambda: home.is_dir() and any(home.glob(f".{STORE_FILE}.*")), 120)
    time.sleep(delay_s)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert building or (home / STORE_FILE).exists()
    # Either no store or a whole one: never a half-made mlflow.db.
    assert inspect_store(home / STORE_FILE) in (None, "missing")

    # The next command works (in this process: the same code path as `gravityml models list`).
    from gravityml.tracking import list_models

    assert list_models(Workspace.current(home)) == []
    assert inspect_store(home / STORE_FILE) is None
    assert not list(home.glob(f".{STORE_FILE}.*"))  # the killed builder's file was removed


def _half_made_by_mlflow(db: Path) -> None:
    """What a kill during MLflow's in-place creation leaves: tables without the recorded schema."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{db}"
    store = SqlAlchemyStore(uri, db.parent.as_uri())
    store.engine.dispose()
    SqlAlchemyStore._engine_map.pop(uri, None)
    con = sqlite3.connect(db)
    con.execute("DROP TABLE alembic_version")
    con.execute("CREATE TABLE _alembic_tmp_runs (x INTEGER)")
    con.commit()
    con.close()


def test_a_half_made_empty_store_is_rebuilt(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    home.mkdir()
    _half_made_by_mlflow(home / STORE_FILE)
    assert "interrupted" in (inspect_store(home / STORE_FILE) or "")
    ws = Workspace.current(home)
    assert [e.name for e in ws.client.search_experiments()] == ["Default"]
    assert inspect_store(home / STORE_FILE) is None


def test_a_half_made_store_with_runs_is_named_with_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    home.mkdir()
    ws = Workspace.current(home)
    ws.client.create_run(ws.experiment_id("kept"))
    con = sqlite3.connect(home / STORE_FILE)
    con.execute("CREATE TABLE _alembic_tmp_runs (x INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(WorkspaceError, match=r"damaged: a schema migration was interrupted.*holds 1 runs.*mlflow db upgrade"):
        Workspace.current(home).client.search_experiments()
    assert (home / STORE_FILE).exists()  # nothing was thrown away


def test_a_store_file_that_is_not_sqlite_with_nothing_in_it_is_rebuilt(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    home.mkdir()
    (home / STORE_FILE).write_bytes(b"")
    Workspace.current(home).client.search_experiments()
    assert inspect_store(home / STORE_FILE) is None
