"""Runs the standalone Spark cluster tests (``cluster/spark_netns.py``) inside a private network namespace.

A Spark master and one worker bind 127.0.0.1 (SPARK_LOCAL_IP, SPARK_MASTER_HOST); inside ``unshare -n``
(root), then ``ip link set lo up``, loopback is the only interface, so nothing is reachable from outside.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyspark")  # the `spark` extra; `make test` installs it (dev)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODULE = HERE / "cluster" / "spark_netns.py"


def _unshare_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the Spark cluster test needs root for `unshare -n` (a private network namespace); not root here"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "the Spark cluster test needs `unshare` and `ip` (util-linux, iproute2); not found"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`unshare -n` is not allowed here: {probe.stderr.strip()[:200]}"
    return None


@pytest.mark.slow
@pytest.mark.xdist_group("spark-cluster")
@pytest.mark.timeout(400)
def test_standalone_spark_site_in_a_private_network(tmp_path: Path) -> None:
    reason = _unshare_unavailable()
    if reason:
        pytest.skip(reason)
    inner = (f"ip link set lo up && exec {sys.executable} -m pytest {MODULE} -q -x -p no:cacheprovider "
             f"--basetemp={tmp_path / 'inner'} --timeout=300 --durations=10")
    env = {**os.environ, "GRAVITYML_NETNS": "1", "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(["unshare", "-n", "sh", "-c", inner], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=380, check=False)
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, output[-8000:]
    assert " passed" in output and "failed" not in output.splitlines()[-1]
