"""What killed commands leave behind, found by name, and what no run owns (``gravityml gc``).

Most leftovers are removed by the next command that would write the same thing: a scored file's
temporary file by the next write of that file, an export's staging folder by the next export to
that folder, a job's scratch folder by the next job, a half-built store by the next command. This
module finds them all at once, and also what no run owns any more:

==================  ===========================================================  ====================
kind                what                                                         owned while
==================  ===========================================================  ====================
scratch             ``tmp/job-<pid>-*`` (and ``job-*`` of earlier versions)      its process runs
temporary           ``.<name>.<pid>.<random>.gvtmp`` beside an output, in the    its process runs
                    workspace or in the folders given (where outputs go)
legacy temporary    ``.<name>.<8 chars>.tmp`` files and export staging folders   never (no PID)
                    of earlier versions, in the folders given
checkpoint          ``checkpoints/<job>-<digest>``                               its run can resume
cached model        ``cache/models/<name>/<version>``                            the version exists
artefacts           ``artifacts/<experiment>/<run id>``                          the store has the run
==================  ===========================================================  ====================
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gravityml._files import TEMP_SUFFIX, is_stale_temp, pid_alive
from gravityml.tracking._workspace import Workspace, scratch_owner

#: A checkpoint folder without its run id is being set up by a starting job for a moment.
FRESH_CHECKPOINT_S = 300.0
_LEGACY_SCRATCH = re.compile(r"^job-[a-z0-9_]{8}$")  # tempfile.TemporaryDirectory(prefix="job-")
_LEGACY_TEMP = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}(?:\.tmp)?$")  # mkstemp / mkdtemp beside a target
_EXPORT_FILES = ("metadata.json", "model.onnx", "model.fp32.onnx")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Leftover:
    path: Path
    kind: str
    reason: str
    size_bytes: int


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        try:
            return path.lstat().st_size
        except OSError:
            return 0
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += (Path(dirpath) / name).lstat().st_size
            except OSError:
                continue
    return total


def _item(path: Path, kind: str, reason: str) -> Leftover:
    return Leftover(path=path, kind=kind, reason=reason, size_bytes=_size(path))


def _temporaries(folder: Path, *, legacy: bool) -> Iterable[Leftover]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if name.endswith(TEMP_SUFFIX) and is_stale_temp(entry):
            pid = name[1 : -len(TEMP_SUFFIX)].rsplit(".", 2)[1]
            yield _item(entry, "temporary", f"written by process {pid}, which is gone")
        elif legacy and (match := _LEGACY_TEMP.match(name)):
            if entry.is_file() and name.endswith(".tmp"):
                yield _item(entry, "legacy temporary", f"an unfinished write of {match.group('target')!r}")
            elif entry.is_dir() and any((entry / f).exists() for f in _EXPORT_FILES):
                yield _item(entry, "legacy temporary", f"an unfinished export to {match.group('target')!r}")


def _scratch(ws: Workspace) -> Iterable[Leftover]:
    if ws.tmp_dir.is_dir():
        for entry in sorted(ws.tmp_dir.iterdir()):
            pid = scratch_owner(entry.name)
            if pid is not None and pid != os.getpid() and not pid_alive(pid):
                yield _item(entry, "scratch", f"working folder of process {pid}, which is gone")
    if ws.root.is_dir():
        for entry in sorted(ws.root.iterdir()):
            if entry.is_dir() and _LEGACY_SCRATCH.match(entry.name):
                yield _item(entry, "scratch", "working folder of a job killed under an earlier version")


def _walk_temporaries(root: Path) -> Iterable[Leftover]:
    if not root.is_dir():
        return
    for dirpath, dirnames, _ in os.walk(root):
        yield from _temporaries(Path(dirpath), legacy=False)
        dirnames[:] = [d for d in dirnames if not d.endswith(TEMP_SUFFIX)]


def _checkpoints(ws: Workspace, runs: dict[str, str], registered: set[str]) -> Iterable[Leftover]:
    if not ws.checkpoints_dir.is_dir():
        return
    for folder in sorted(p for p in ws.checkpoints_dir.iterdir() if p.is_dir()):
        run_file = folder / "run_id"
        if not run_file.exists():
            if time.time() - folder.stat().st_mtime > FRESH_CHECKPOINT_S:
                yield _item(folder, "checkpoint", "no run was ever started from it")
            continue
        run_id = run_file.read_text(encoding="utf-8").strip()
        if run_id in registered:
            yield _item(folder, "checkpoint", f"run {run_id} registered its version: nothing left to resume")
        elif run_id not in runs:
            yield _item(folder, "checkpoint", f"run {run_id} is not in the store")
        elif runs[run_id] == "FINISHED":
            yield _item(folder, "checkpoint", f"run {run_id} finished")


def _cache(ws: Workspace, versions: set[tuple[str, str]]) -> Iterable[Leftover]:
    models = ws.cache_dir / "models"
    if not models.is_dir():
        return
    for name in sorted(p for p in models.iterdir() if p.is_dir()):
        for version in sorted(p for p in name.iterdir() if p.is_dir()):
            if version.name.startswith("."):
                if version.name.endswith(".partial"):
                    yield _item(version, "cached model", "an unfinished download (earlier version)")
                continue
            if (name.name, version.name) not in versions:
                yield _item(version, "cached model", f"{name.name}/{version.name} is not registered any more")


def _artefacts(ws: Workspace, runs: dict[str, str]) -> Iterable[Leftover]:
    if not ws.artifacts_dir.is_dir():
        return
    for experiment in sorted(p for p in ws.artifacts_dir.iterdir() if p.is_dir()):
        for folder in sorted(p for p in experiment.iterdir() if p.is_dir()):
            if _RUN_ID.match(folder.name) and folder.name not in runs:
                yield _item(folder, "artefacts", f"run {folder.name} is not in the store")


def _store_contents(ws: Workspace) -> tuple[dict[str, str], set[str], set[tuple[str, str]]]:
    """Every run (id -> status), the runs that registered a version, every (model, version)."""
    from mlflow.entities import ViewType

    client = ws.client
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL, max_results=50_000)]
    runs: dict[str, str] = {}
    for start in range(0, len(experiments), 100):
        token = None
        while True:
            page = client.search_runs(
                experiments[start : start + 100], run_view_type=ViewType.ALL, max_results=50_000, page_token=token
            )
            runs.update({r.info.run_id: r.info.status for r in page})
            token = page.token
            if not token:
                break
    registered: set[str] = set()
    versions: set[tuple[str, str]] = set()
    for mv in client.search_model_versions(max_results=200_000):
        versions.add((mv.name, str(mv.version)))
        if mv.run_id:
            registered.add(mv.run_id)
    return runs, registered, versions


def find_leftovers(ws: Workspace, folders: Sequence[str | os.PathLike[str]] = ()) -> list[Leftover]:
    """Everything :func:`remove_leftovers` would remove (see the module's table)."""
    found = list(_scratch(ws))
    found += _walk_temporaries(ws.root)
    for folder in folders:
        found += _temporaries(Path(folder), legacy=True)
    runs, registered, versions = _store_contents(ws)
    found += _checkpoints(ws, runs, registered)
    found += _cache(ws, versions)
    if ws.embedded:  # a shared server's artefacts are its own store's business
        found += _artefacts(ws, runs)
    unique: dict[Path, Leftover] = {}
    for item in found:
        unique.setdefault(item.path, item)
    return list(unique.values())


def remove_leftovers(items: Iterable[Leftover]) -> int:
    """Remove ``items``; the bytes freed."""
    freed = 0
    for item in items:
        if item.path.is_dir() and not item.path.is_symlink():
            shutil.rmtree(item.path, ignore_errors=True)
        else:
            item.path.unlink(missing_ok=True)
        if not item.path.exists():
            freed += item.size_bytes
    return freed
