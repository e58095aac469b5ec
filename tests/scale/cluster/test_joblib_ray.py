"""A scikit-learn model with n_jobs on a Ray site fits through joblib's Ray backend (issue 13, point 1):
its parallel work runs as Ray actors of the cluster, not as processes of the node the driver is on."""

from __future__ import annotations


def test_a_random_forest_with_n_jobs_fits_over_the_clusters_cpus_through_joblibs_ray_backend(scale_env, cli) -> None:  # type: ignore[no-untyped-def]
    from ray.util.state import list_actors

    name = "cancer-forest-joblib"
    spec = {"name": name, "task": "supervised",
            "data": {"source": "sklearn:breast_cancer", "target": "target", "split": {"test": 0.25, "seed": 3}},
            "model": {"type": "random_forest", "params": {"n_estimators": 48, "n_jobs": -1}},
            "compute": {"accelerator": "cpu"},
            "placement": {"estimate": {"hours": 0.001, "hardware": "cpu", "devices": 1}}}
    before = {a.actor_id for a in list_actors(address=scale_env.dashboard, filters=[("class_name", "=", "PoolActor")],
                                              limit=10_000)}
    path = scale_env.job(name, spec)
    code, out, err = cli("train", str(path), "--catalog", str(scale_env.catalog), "--site", scale_env.site)
    assert code == 0, (out + err)[-3000:]
    registry = scale_env.registry()
    (version,) = registry.search_model_versions(f"name='{name}'")
    assert version.tags["gravityml.joblib_backend"].startswith("joblib's Ray backend (n_jobs -1")
    assert registry.get_run(version.run_id).data.metrics["test/accuracy"] > 0.9
    # joblib's Ray backend is a Ray multiprocessing pool: its workers are PoolActor actors of the cluster.
    pool = [a for a in list_actors(address=scale_env.dashboard, filters=[("class_name", "=", "PoolActor")],
                                   detail=True, limit=10_000) if a.actor_id not in before]
    assert pool, "no PoolActor ran: the forest was not fitted through joblib's Ray backend"
    assert all(a.node_id for a in pool)
