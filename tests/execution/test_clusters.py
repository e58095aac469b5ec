"""Runs the real two-cluster tests (``cluster/sites_netns.py``) inside a private network namespace.

A Ray head binds every interface and advertises this machine's address, so the clusters run where
loopback is the only interface: ``unshare -n`` (root), then ``ip link set lo up``. This test starts
that namespace, runs the module there with pytest, and passes when every test in it passed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODULE = HERE / "cluster" / "sites_netns.py"


def _unshare_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the Ray cluster tests need root for `unshare -n` (a private network namespace); not root here"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "the Ray cluster tests need `unshare` and `ip` (util-linux, iproute2); not found"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`unshare -n` is not allowed here: {probe.stderr.strip()[:200]}"
    return None


@pytest.mark.slow
@pytest.mark.xdist_group("ray-clusters")
@pytest.mark.timeout(900)
def test_two_sites_on_two_ray_clusters_in_a_private_network(tmp_path: Path) -> None:
    reason = _unshare_unavailable()
    if reason:
        pytest.skip(reason)
    inner = (f"ip link set lo up && exec {sys.executable} -m pytest {MODULE} -q -x -p no:cacheprovider "
             f"--basetemp={tmp_path / 'inner'} --timeout=600 --durations=20")
    env = {**os.environ, "GRAVITYML_NETNS": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(["unshare", "-n", "sh", "-c", inner], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=880, check=False)
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, output[-8000:]
    assert " passed" in output and "failed" not in output.splitlines()[-1]
