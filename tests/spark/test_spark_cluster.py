"""Runs the standalone Spark cluster tests (``cluster/spark_netns.py``) inside a private network namespace.

A Spark master and one worker bind 127.0.0.1 (SPARK_LOCAL_IP, SPARK_MASTER_HOST); inside ``unshare -n``
(root), then ``ip link set lo up``, loopback is the only interface, so nothing is reachable from outside.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests._netns import run_in_private_network

pytest.importorskip("pyspark")  # the `spark` extra; `make test` installs it (dev)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODULE = HERE / "cluster" / "spark_netns.py"


@pytest.mark.slow
@pytest.mark.xdist_group("spark-cluster")
@pytest.mark.timeout(520)
def test_standalone_spark_site_in_a_private_network(tmp_path: Path) -> None:
    run_in_private_network(MODULE, tmp_path, what="Spark cluster test", timeout_s=500, inner_timeout_s=300,
                           pytest_args="--durations=10", env={"SPARK_LOCAL_IP": "127.0.0.1"})
