"""Runs the real two-cluster tests (``cluster/sites_netns.py``) inside a private network namespace.

A Ray head binds every interface and advertises this machine's address, so the clusters run where
loopback is the only interface: ``unshare -n`` (root), then ``ip link set lo up``. This test starts
that namespace, runs the module there with pytest, and passes when every test in it passed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests._netns import run_in_private_network

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODULE = HERE / "cluster" / "sites_netns.py"


@pytest.mark.slow
@pytest.mark.xdist_group("ray-clusters")
@pytest.mark.timeout(900)
def test_two_sites_on_two_ray_clusters_in_a_private_network(tmp_path: Path) -> None:
    run_in_private_network(MODULE, tmp_path, what="Ray cluster tests", timeout_s=880, inner_timeout_s=600,
                           pytest_args="--durations=20")
