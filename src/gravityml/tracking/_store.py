"""The embedded MLflow store (``mlflow.db``): built whole under a lock, or not at all.

MLflow creates a new SQLite store in place, table by table and then migration by migration
(seconds). A command killed meanwhile used to leave a file that every later command tripped on
(``duplicate column name: step``, ``table _alembic_tmp_... already exists``), and commands started
together on a new workspace ran the migrations over each other. Here:

* the store is built in a temporary file beside ``mlflow.db`` and renamed into place, so
  ``mlflow.db`` is either absent or complete;
* building happens under an exclusive file lock (``.store.lock``), so one process builds and the
  others wait for it and then use its store;
* the store is switched to SQLite's write-ahead log (readers never block the writer; MLflow
  already sets a 20 s busy timeout on every session), a setting kept in the file itself;
* a half-made store (from a killed command of an older gravityml, or an ``mlflow`` command killed
  while it created one) is rebuilt when it holds no runs and no models, and named in a one-line
  error with the fix when it does.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from gravityml._files import file_lock, fsync_dir, is_stale_temp, temp_name, umask
from gravityml.errors import WorkspaceError

STORE_FILE = "mlflow.db"
LOCK_FILE = ".store.lock"
SIDECARS = ("-wal", "-shm", "-journal")


def inspect_store(db: Path) -> str | None:
    """``None`` when ``db`` is a complete MLflow store, else why it is not ("missing" when absent)."""
    if not db.exists():
        return "missing"
    if db.stat().st_size == 0:
        return "the file is empty"
    try:
        con = sqlite3.connect(str(db), timeout=30)
        try:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
            if leftovers:
                return f"a schema migration was interrupted (leftover table {leftovers[0]})"
            if "alembic_version" not in tables:
                return "its schema was never completed (no alembic_version table)"
            if con.execute("SELECT count(*) FROM alembic_version").fetchone()[0] != 1:
                return "its schema version is not recorded"
            if not {"experiments", "runs", "registered_models", "model_versions"} <= tables:
                return "tables are missing"
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return f"it is not a readable SQLite database ({exc})"
    return None


def _holds_work(db: Path) -> int:
    """How many runs and registered models a (half-made) store holds; 0 when it cannot say."""
    try:
        con = sqlite3.connect(str(db), timeout=30)
        try:
            total = 0
            for table in ("runs", "registered_models"):
                try:
                    total += int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                except sqlite3.DatabaseError:
                    continue
            return total
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return 0


def _remove(db: Path) -> None:
    for suffix in ("", *SIDECARS):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def _remove_stale_builds(folder: Path) -> None:
    """Temporary stores (and their journals) of builders that were killed."""
    for entry in folder.glob(f".{STORE_FILE}.*"):
        base = entry
        for suffix in SIDECARS:
            if entry.name.endswith(suffix):
                base = entry.with_name(entry.name[: -len(suffix)])
        if is_stale_temp(base, STORE_FILE):
            entry.unlink(missing_ok=True)


def _build(db: Path, artifact_root: str) -> None:
    """A complete store in a temporary file, renamed to ``db``."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    tmp = temp_name(db)
    uri = f"sqlite:///{tmp}"
    try:
        store = SqlAlchemyStore(uri, artifact_root)  # tables, migrations, the Default experiment
        store.engine.dispose()
        SqlAlchemyStore._engine_map.pop(uri, None)  # MLflow caches engines by URI
        con = sqlite3.connect(str(tmp))
        try:
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":  # pragma: no cover - a file system without shared memory
                con.execute("PRAGMA journal_mode=DELETE")
        finally:
            con.close()  # the last connection checkpoints the log: the file is whole
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, db)
        fsync_dir(db.parent)
    finally:
        _remove(tmp)


def ensure_store(root: Path, artifact_root: str) -> Path:
    """``root/mlflow.db``, built atomically when missing (or half-made and empty); see the module."""
    db = root / STORE_FILE
    if inspect_store(db) is None:  # the common case: no lock, one small read
        return db
    try:
        with file_lock(root / LOCK_FILE):
            _ensure_locked(db, artifact_root)
    except OSError as exc:
        raise WorkspaceError(
            f"cannot create the MLflow store in {str(root)!r}: {exc.strerror or exc}",
            got=str(root),
            fix="set GRAVITYML_HOME to a folder you can write, with free space",
        ) from None
    return db


def _ensure_locked(db: Path, artifact_root: str) -> None:
    problem = inspect_store(db)  # another process may have built it while this one waited
    if problem is None:
        return
    _remove_stale_builds(db.parent)
    if problem != "missing":
        held = _holds_work(db)
        if held:
            raise WorkspaceError(
                f"the MLflow store {str(db)!r} is damaged: {problem}; it holds {held} runs and models, so it "
                "was not rebuilt",
                allowed="a complete MLflow store",
                got=problem,
                fix=f"back it up, then repair it with `mlflow db upgrade sqlite:///{db}`, or move it away to "
                "start an empty store",
            )
        _remove(db)  # nothing in it to lose: build it again
    _build(db, artifact_root)
