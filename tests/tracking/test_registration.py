"""A run that registered its version is finished: a real kill right after registration, then --resume."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from gravityml.errors import WorkspaceError
from gravityml.tracking import TrackedRun, Workspace, register, resolve, start_run, versions

# `gravityml train` whose process is SIGKILLed the moment the version is registered.
KILL_AFTER_REGISTER = """
import os, signal, sys
import gravityml.execution._local as local

original = local.register

def register(*args, **kwargs):
    version = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

local.register = register
from gravityml.cli import main
main(sys.argv[1:])
"""


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() + f":{p.stat().st_mtime_ns}"
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_resume_after_a_kill_right_after_registration_does_nothing(cli, workspace: Workspace, tmp_path: Path, write_spec) -> None:
    spec = write_spec(tmp_path / "iris.yaml")
    env = {**os.environ, "GRAVITYML_HOME": str(workspace.root)}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_REGISTER, "train", str(spec)], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=600,
    )
    assert proc.returncode == -9, proc.stderr
    (version,) = versions(workspace, "iris")
    assert workspace.client.get_run(version.run_id).info.status == "RUNNING"  # killed inside the run
    assert list(workspace.checkpoints_dir.glob("iris-*/run_id"))  # so --resume finds it
    model_dir = Path(urlparse(workspace.client.get_model_version_download_uri("iris", "1")).path)
    before = _tree_digest(model_dir)
    assert "gravityml.json" in before

    code, out, err = cli("train", str(spec), "--resume")
    assert code == 0, err
    assert f"nothing to do: run {version.run_id} had already registered iris/1" in out
    assert [v.version for v in versions(workspace, "iris")] == [1]  # never a second version
    assert workspace.client.get_run(version.run_id).info.status == "FINISHED"
    assert _tree_digest(model_dir) == before  # not a byte (nor a timestamp) of the version changed
    assert not list(workspace.checkpoints_dir.glob("iris-*"))

    code, out, err = cli("train", str(spec), "--resume")  # nothing left to resume: a new run and version
    assert code == 0, err
    assert [v.version for v in versions(workspace, "iris")] == [2, 1]


def test_register_is_idempotent_per_run_and_a_registered_run_takes_no_model(workspace: Workspace, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "gravityml.json").write_text("{}")
    with start_run(workspace, "idem") as run:
        source = run.log_model(model)
        first = register(workspace, "idem", run_id=run.run_id, source=source)
        again = register(workspace, "idem", run_id=run.run_id, source=source)
        assert again.version == first.version == 1
        with pytest.raises(WorkspaceError, match=r"already registered idem/1; its model files are not written again"):
            run.log_model(model)
    assert [v.version for v in versions(workspace, "idem")] == [1]
    assert resolve(workspace, "idem").run_id == run.run_id
    assert isinstance(run, TrackedRun)
