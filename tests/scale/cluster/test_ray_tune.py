"""The search on the session's two-node cluster with Ray Tune (issue 13, points 2 and 4).

`tune.max_concurrent: 2` on a Ray site: the job's driver on the cluster runs the trials with Ray
Tune (Optuna's sampler, ASHA), two at a time, each one a child run in the shared registry.
"""

from __future__ import annotations

TRIALS, EPOCHS = 8, 9

SPEC = {
    "task": "supervised",
    "data": {"source": "sklearn:iris", "target": "target", "split": {"test": 0.2, "validation": 0.2, "seed": 3}},
    "model": {"type": "mlp", "params": {"hidden": [16]}},
    "train": {"epochs": EPOCHS, "batch_size": 16, "seed": 3},
    "compute": {"accelerator": "cpu", "precision": "fp32", "threads": 1},
    "placement": {"estimate": {"hours": 0.001, "hardware": "cpu", "devices": 1}},
    "tune": {"metric": "test/accuracy", "mode": "max", "trials": TRIALS, "max_concurrent": 2, "scheduler": "asha",
             "space": {"lr": {"loguniform": [1.0e-5, 5.0e-2]}}},
}


def test_a_search_of_8_trials_with_asha_runs_two_at_a_time_on_the_cluster_and_registers_its_best(  # type: ignore[no-untyped-def]
    scale_env, cli,
) -> None:
    name = "iris-ray-tune"
    path = scale_env.job(name, {**SPEC, "name": name})
    code, out, err = cli("train", str(path), "--catalog", str(scale_env.catalog), "--site", scale_env.site)
    assert code == 0, (out + err)[-4000:]
    assert "search    best of trial" in out
    registry = scale_env.registry()
    experiment = registry.get_experiment_by_name(name)
    runs = registry.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == TRIALS, [r.info.run_name for r in runs]
    assert "Ray Tune over the cluster, 2 trials at once" in parent.data.tags["gravityml.ray_tune"]
    assert parent.data.tags["gravityml.executor"] == "ray"
    states = [c.data.tags["gravityml.trial_state"] for c in children]
    complete = [c for c in children if c.data.tags["gravityml.trial_state"] == "complete"]
    assert complete and all(s == "complete" or s.startswith("pruned by ASHA") for s in states), states
    assert all(c.info.status == "FINISHED" for c in children)
    for child in complete:  # a complete trial ran every epoch; the values it trained with are on it
        assert len(registry.get_metric_history(child.info.run_id, "val/accuracy")) == EPOCHS
        assert 1.0e-5 <= float(child.data.params["trial.lr"]) <= 5.0e-2
    # Two trials ran at once: some pair of child runs overlaps in time.
    spans = sorted((c.info.start_time, c.info.end_time) for c in children)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)), spans
    assert all(c.data.tags["gravityml.ray_node_id"] for c in children)
    (version,) = registry.search_model_versions(f"name='{name}'")
    best = max(complete, key=lambda c: c.data.metrics["test/accuracy"])
    assert registry.get_run(version.run_id).data.metrics["test/accuracy"] == best.data.metrics["test/accuracy"]
    assert version.tags["gravityml.search_run_id"] == parent.info.run_id
    assert version.tags["gravityml.trials_complete"] == str(len(complete))
