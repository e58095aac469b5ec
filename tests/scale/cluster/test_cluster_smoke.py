"""The session's cluster is two raylets, and a task can be placed on each (checks the harness itself)."""

from __future__ import annotations

import time


def test_the_cluster_has_two_raylets_and_runs_a_task_on_each(scale_cluster) -> None:  # type: ignore[no-untyped-def]
    import ray

    ray.init(address=scale_cluster.gcs_address, logging_level="ERROR", log_to_driver=False)
    try:
        alive = [n for n in ray.nodes() if n["Alive"]]
        assert len(alive) == 2 and all(n["Resources"]["CPU"] == 2 for n in alive)

        @ray.remote(num_cpus=2)
        def where() -> str:
            time.sleep(0.5)
            return ray.get_runtime_context().get_node_id()

        assert len(set(ray.get([where.remote() for _ in range(2)]))) == 2
    finally:
        ray.shutdown()
    assert scale_cluster.s3().list_buckets()["Buckets"]
