"""Runs the scale-out tests (``cluster/``: Ray Train, Ray Data) inside a private network namespace.

A Ray head binds every interface and advertises this machine's address, so the cluster runs where
loopback is the only interface: ``unshare -n`` (root), then ``ip link set lo up``. This test starts
that namespace, runs the whole ``cluster/`` folder there with pytest (one cluster for the session:
a head plus one worker node, ``cluster/conftest.py``), and passes when every test in it passed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests._netns import run_in_private_network

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FOLDER = HERE / "cluster"


@pytest.mark.slow
@pytest.mark.xdist_group("ray-scale-cluster")
@pytest.mark.timeout(1000)
def test_scale_out_on_a_two_node_ray_cluster_in_a_private_network(tmp_path: Path) -> None:
    run_in_private_network(FOLDER, tmp_path, what="Ray cluster tests", timeout_s=980, inner_timeout_s=800,
                           pytest_args="-p no:xdist --durations=0")
