"""Writing outputs safely: one atomic-write helper for files and folders (layer 0).

Every output the platform writes (scored files, exports, reports, plots, checkpoints, the MLflow
store itself) is built under a temporary name beside its target, fsynced, renamed into place and
its folder fsynced, so a kill at any moment leaves either the old output or the new one, never half
of one. Temporary names are recognisable and carry the writer's PID::

    .<target name>.<pid>.<random>.gvtmp

so the next writer of the same target (or ``gravityml gc``) removes what a killed writer left,
and never what a live one is still writing. Outputs get the permissions a plain ``open()`` would
give (``0o666``, folders ``0o777``, less the umask), not the private ``0o600`` of ``mkstemp``.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "TEMP_SUFFIX",
    "atomic_dir",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_lock",
    "fsync_dir",
    "fsync_tree",
    "is_stale_temp",
    "pid_alive",
    "publish_dir",
    "remove_stale_temps",
    "staging_dir",
    "temp_name",
    "umask",
]

TEMP_SUFFIX = ".gvtmp"


def umask() -> int:
    """The process umask, read without changing it (``/proc/self/status``; else set and restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)  # pragma: no cover - kernels before 4.7, other systems
    os.umask(current)  # pragma: no cover
    return current  # pragma: no cover


def temp_name(target: Path) -> Path:
    """A temporary path beside ``target`` that names its writer (see the module docstring)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is running (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def is_stale_temp(path: Path, target_name: str | None = None) -> bool:
    """True for a temporary name of ours whose writer is no longer running."""
    name = path.name
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return False
    parts = name[1 : -len(TEMP_SUFFIX)].rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    if target_name is not None and parts[0] != target_name:
        return False
    return int(parts[1]) != os.getpid() and not pid_alive(int(parts[1]))


def remove_stale_temps(folder: Path, target_name: str | None = None) -> list[Path]:
    """Remove what killed writers left in ``folder`` (for ``target_name`` only, when given)."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if is_stale_temp(entry, target_name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in ``folder`` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - a platform that cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (deepest first), and ``root`` itself."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                _fsync_file(path)
        fsync_dir(Path(dirpath))


def _chmod_tree(root: Path, mask: int) -> None:
    """Folders ``0o777``, files ``0o666`` (executables ``0o777``), less ``mask``."""
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            executable = path.stat().st_mode & 0o111
            os.chmod(path, (0o777 if executable else 0o666) & ~mask)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then sync it and rename it into place.

    ``write`` receives the temporary path (it may create or replace the file there). The result has
    the umask's permissions; on any error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp = temp_name(path)
    try:
        write(tmp)
        if not tmp.exists():  # a writer that wrote nothing still gives an (empty) file
            tmp.touch()
        os.chmod(tmp, 0o666 & ~umask())
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def staging_dir(target: str | os.PathLike[str]) -> Path:
    """A new empty folder beside ``target`` to build it in (what killed builders left is removed)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    staging = temp_name(target)
    staging.mkdir()
    return staging


def publish_dir(staging: Path, target: str | os.PathLike[str], *, replace: bool = True) -> Path:
    """Sync ``staging`` and rename it to ``target``, with the umask's permissions.

    ``replace``: an existing ``target`` is swapped out (renamed aside, then removed), so there is no
    moment without either the old folder or the new one.
    """
    target = Path(target)
    _chmod_tree(staging, umask())
    fsync_tree(staging)
    if target.exists():
        if not replace:
            raise FileExistsError(str(target))
        old = temp_name(target)
        os.replace(target, old)
        os.replace(staging, target)
        fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)
        fsync_dir(target.parent)
    return target


@contextmanager
def atomic_dir(path: str | os.PathLike[str], *, replace: bool = True) -> Iterator[Path]:
    """A staging folder beside ``path``; on a clean exit it is published as ``path`` (see
    :func:`publish_dir`). On error the staging folder is removed and ``path`` is untouched."""
    staging = staging_dir(path)
    try:
        yield staging
        publish_dir(staging, path, replace=replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created when missing), released on exit or death.

    ``flock`` locks belong to the open file: a killed holder releases its lock with its process, so
    a kill can never leave a workspace locked.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
