"""Run a folder or module of cluster tests inside a private network namespace (``unshare -n``).

Ray heads bind every interface and advertise this machine's address, and Spark's master may too; where
loopback is the only interface (``unshare -n`` as root, then ``ip link set lo up``) every server binds
and advertises 127.0.0.1 and nothing is reachable from outside. The outer test re-execs pytest there
with ``GRAVITYML_NETNS=1`` (the inner conftest collects only then) and passes when every inner test passed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def unshare_unavailable(what: str) -> str | None:
    """Why ``unshare -n`` cannot run here (a reason to skip), or None."""
    if os.geteuid() != 0:
        return f"the {what} need root for `unshare -n` (a private network namespace); not root here"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return f"the {what} need `unshare` and `ip` (util-linux, iproute2); not found"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`unshare -n` is not allowed here: {probe.stderr.strip()[:200]}"
    return None


def run_in_private_network(target: Path, tmp_path: Path, *, what: str, timeout_s: int, inner_timeout_s: int,
                           pytest_args: str = "", env: dict[str, str] | None = None) -> None:
    """pytest on ``target`` inside ``unshare -n``; prints its output and asserts that every test passed."""
    reason = unshare_unavailable(what)
    if reason:
        pytest.skip(reason)
    inner = (f"ip link set lo up && exec {sys.executable} -m pytest {target} -q -x -p no:cacheprovider "
             f"--basetemp={tmp_path / 'inner'} --timeout={inner_timeout_s} {pytest_args}")
    full_env = {**os.environ, "GRAVITYML_NETNS": "1", **(env or {})}
    full_env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(["unshare", "-n", "sh", "-c", inner], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout_s, check=False)
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, output[-8000:]
    assert " passed" in output and "failed" not in output.splitlines()[-1]


def kill_groups(procs: list[subprocess.Popen]) -> None:
    """SIGKILL the process groups of servers started in their own sessions, all at once, then reap them.
    No graceful stop: nothing outlives the namespace (Ray's state, MLflow's store and moto's buckets are in
    temporary folders), and a graceful `ray start --block` shutdown waited up to 15 s a node, one after the other."""
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def kill_rest_of_namespace() -> None:
    """Inside a private network namespace every process left was started by its tests (Ray's workers and
    job drivers run in sessions of their own): kill them by PID, sparing this process and its ancestors."""
    mine = os.readlink("/proc/self/ns/net")
    spare, pid = set(), os.getpid()
    while pid > 1:
        spare.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spare:
            continue
        try:
            if os.readlink(entry / "ns" / "net") == mine:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue
