"""Outputs are written whole with the umask's permissions; leftovers of kills are found and removed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gravityml import _files
from gravityml._files import atomic_dir, atomic_write, atomic_write_text, staging_dir
from gravityml.tracking import Workspace, start_run


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def umask_027():
    previous = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(previous)


def test_outputs_get_the_umask_permissions_not_mkstemp_ones(tmp_path: Path, umask_027: None) -> None:
    from gravityml.data import write_table

    scored = write_table(pd.DataFrame({"a": [1, 2]}), tmp_path / "scored.csv")
    assert _mode(scored) == 0o640
    with atomic_dir(tmp_path / "export") as staging:
        (staging / "model.onnx").write_bytes(b"x")
        (staging / "sub").mkdir()
        (staging / "sub" / "f").write_text("y")
    assert _mode(tmp_path / "export") == 0o750
    assert _mode(tmp_path / "export" / "model.onnx") == 0o640
    assert _mode(tmp_path / "export" / "sub") == 0o750
    os.umask(0o002)
    assert _mode(atomic_write_text(tmp_path / "report.json", "{}")) == 0o664


def test_a_file_is_synced_before_it_is_renamed_and_its_folder_after(tmp_path: Path, monkeypatch) -> None:
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        calls.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(_files.os, "fsync", fsync)
    monkeypatch.setattr(_files.os, "replace", replace)
    target = tmp_path / "out.csv"
    atomic_write_text(target, "a\n1\n")
    assert [c[0] for c in calls] == ["fsync", "replace", "fsync"]
    assert calls[0][1].endswith(_files.TEMP_SUFFIX)  # the temporary file's data, before the rename
    assert calls[1][1] == str(target)
    assert calls[2][1] == str(tmp_path)  # then the folder entry
    assert target.read_text() == "a\n1\n"


# A process killed in the middle of writing an output (as `predict` was, 18-61 MB in).
KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from gravityml._files import atomic_write

def write(tmp):
    tmp.write_bytes(b"x" * 100_000)
    os.kill(os.getpid(), signal.SIGKILL)

atomic_write(Path(sys.argv[1]), write)
"""


def _killed_writer(target: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(target)], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    target = tmp_path / "scored.csv"
    _killed_writer(target)
    (left,) = [p for p in tmp_path.iterdir()]
    assert left.name.startswith(".scored.csv.") and left.name.endswith(".gvtmp")
    assert not target.exists()
    other = tmp_path / "other.csv"
    atomic_write_text(other, "b")  # another target's writer leaves it alone
    assert left.exists()
    atomic_write(target, lambda tmp: tmp.write_text("a"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.csv", "scored.csv"]


def test_a_live_writers_temporary_file_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    live = target.with_name(f".out.csv.{os.getppid()}.0123abcd.gvtmp")  # our parent is running
    live.write_text("partial")
    atomic_write_text(target, "a")
    assert live.exists()
    staging = staging_dir(target)  # an export staging folder beside the same target
    assert live.exists() and staging.is_dir()


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_gc_lists_then_removes_what_no_run_owns(cli, workspace: Workspace, tmp_path: Path, write_spec) -> None:
    code, out, err = cli("train", str(write_spec(tmp_path / "iris.yaml")))
    assert code == 0, err
    from gravityml.tracking import download, resolve

    version = resolve(workspace, "iris")
    _, cached = download(workspace, "iris/1")
    dead = _dead_pid()
    ws = workspace.root
    stale_scratch = ws / "tmp" / f"job-{dead}-0123abcd"
    stale_scratch.mkdir(parents=True)
    (stale_scratch / "model.joblib").write_bytes(b"m" * 1000)
    live_scratch = ws / "tmp" / f"job-{os.getpid()}-0123abcd"
    live_scratch.mkdir()
    legacy_scratch = ws / "job-k2x9_q7a"
    legacy_scratch.mkdir()
    done = ws / "checkpoints" / "iris-aaaaaaaaaaaa"
    done.mkdir(parents=True)
    (done / "run_id").write_text(version.run_id)
    with pytest.raises(RuntimeError), start_run(workspace, "iris") as failed:
        raise RuntimeError("crash")
    resumable = ws / "checkpoints" / "iris-bbbbbbbbbbbb"
    resumable.mkdir()
    (resumable / "run_id").write_text(failed.run_id)
    orphan_artefacts = ws / "artifacts" / "iris" / ("f" * 32)
    (orphan_artefacts / "artifacts").mkdir(parents=True)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    _killed_writer(outputs / "scored.csv")
    legacy_output = outputs / ".scored.csv.ab12_xyz.tmp"  # what predict left before this version
    legacy_output.write_bytes(b"x" * 5000)
    legacy_export = outputs / ".exported.q1w2e3r4"
    legacy_export.mkdir()
    (legacy_export / "model.onnx").write_bytes(b"o")
    keep = outputs / "notes.tmp"
    keep.write_text("a user's file")
    workspace.client.delete_model_version("iris", "1")

    code, out, err = cli("gc", str(outputs), "--dry-run")
    assert code == 0, err
    removable = [stale_scratch, legacy_scratch, done, orphan_artefacts, legacy_output, legacy_export, cached]
    for path in removable:
        assert str(path) in out and path.exists(), path
    assert "would remove 8 leftovers" in out  # the seven above and the killed writer's file
    for kept in (live_scratch, resumable, keep):
        assert str(kept) not in out

    code, out, err = cli("gc", str(outputs))
    assert code == 0, err
    assert "removed 8 leftovers" in out
    assert not any(p.exists() for p in removable)
    assert sorted(p.name for p in outputs.iterdir()) == ["notes.tmp"]
    assert live_scratch.exists() and resumable.exists()
    assert (ws / "mlflow.db").exists()
    code, out, err = cli("gc")
    assert "nothing to remove" in out
