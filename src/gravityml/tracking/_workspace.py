"""The workspace: one folder that holds the MLflow store, artefacts, checkpoints and the cost ledger.

``./.gravityml`` by default, ``GRAVITYML_HOME`` to move it; ``MLFLOW_TRACKING_URI`` points tracking
and the registry at a shared MLflow server instead of the embedded SQLite store.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from gravityml._files import pid_alive
from gravityml.errors import WorkspaceError
from gravityml.tracking._store import ensure_store

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

DEFAULT_HOME = ".gravityml"
HOME_ENV = "GRAVITYML_HOME"


_SCRATCH = re.compile(r"^[a-z]+-(?P<pid>\d+)-[0-9a-f]{8}$")


def scratch_owner(name: str) -> int | None:
    """The PID that a scratch folder's name records, or None for a name that is not one."""
    match = _SCRATCH.match(name)
    return int(match.group("pid")) if match else None


def remove_stale_scratch(folder: Path) -> list[Path]:
    """Remove scratch folders in ``folder`` whose process is no longer running."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        pid = scratch_owner(entry.name)
        if pid is not None and pid != os.getpid() and not pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _quiet_mlflow() -> None:
    """MLflow logs schema migrations at INFO on first use; keep a user's terminal to our output."""
    import logging

    import mlflow  # noqa: F401 - configures its loggers on import; adjust them after

    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class Workspace:
    root: Path
    tracking_uri: str
    embedded: bool

    @classmethod
    def current(cls, root: str | Path | None = None) -> Workspace:
        """The workspace named by ``root``, else ``GRAVITYML_HOME``, else ``./.gravityml``."""
        home = Path(root or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
        if home.exists() and not home.is_dir():
            raise WorkspaceError(
                f"workspace {str(home)!r} is a file, not a folder",
                got=str(home),
                fix=f"remove it, or set {HOME_ENV} to a folder",
            )
        override = os.environ.get("MLFLOW_TRACKING_URI")
        uri = override or f"sqlite:///{home / 'mlflow.db'}"
        return cls(root=home, tracking_uri=uri, embedded=not override)

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.jsonl"

    @property
    def tmp_dir(self) -> Path:
        """Working folders of running commands (``job-<pid>-<random>``), removed when they end."""
        return self.root / "tmp"

    @contextmanager
    def scratch(self, kind: str = "job") -> Iterator[Path]:
        """A working folder ``tmp/<kind>-<pid>-<random>``, removed on exit.

        A command killed meanwhile cannot remove its folder; the next command to start one removes
        every folder whose process is gone (the PID in the name says which).
        """
        self.ensure()
        remove_stale_scratch(self.tmp_dir)
        path = self.tmp_dir / f"{kind}-{os.getpid()}-{secrets.token_hex(4)}"
        path.mkdir(parents=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def ensure(self) -> Workspace:
        try:
            for folder in (self.root, self.artifacts_dir, self.checkpoints_dir, self.cache_dir, self.tmp_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(
                f"cannot create the workspace at {str(self.root)!r}: {exc.strerror}",
                got=str(self.root),
                fix=f"set {HOME_ENV} to a folder you can write",
            ) from None
        return self

    @cached_property
    def client(self) -> MlflowClient:
        """An MLflow client bound to this workspace's store (no global MLflow state is touched)."""
        self.ensure()
        _quiet_mlflow()
        if self.embedded:
            ensure_store(self.root, self.artifacts_dir.as_uri())
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (artefacts under the workspace) when missing."""
        client = self.client
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            return str(found.experiment_id)
        location = (self.artifacts_dir / name).as_uri() if self.embedded else None
        from mlflow.exceptions import MlflowException

        try:
            return str(client.create_experiment(name, artifact_location=location))
        except MlflowException:  # another command created it first (commands started together)
            again = client.get_experiment_by_name(name)
            if again is None:
                raise
            return str(again.experiment_id)

    def ui_command(self, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
        """The ``mlflow ui`` command line that serves this workspace's store."""
        import sys

        if self.embedded:  # built here, atomically, rather than by `mlflow ui` in place
            self.ensure()
            ensure_store(self.root, self.artifacts_dir.as_uri())
        command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", self.tracking_uri]
        if self.embedded:
            command += ["--default-artifact-root", self.artifacts_dir.as_uri()]
        return [*command, "--host", host, "--port", str(port)]
