"""The search on the session's two-node cluster with Ray Tune (issue 13, points 2 and 4).

`tune.max_concurrent: 2` on a Ray site: the job's driver on the cluster runs the trials with Ray
Tune (Optuna's sampler, ASHA), two at a time, each one a child run in the shared registry.
"""

from __future__ import annotations

TRIALS, EPOCHS = 8, 9


def _search(registry, name: str) -> tuple:  # type: ignore[no-untyped-def]
    """The search's parent run, its child runs (the trials), and every run of the experiment."""
    runs = registry.search_runs([registry.get_experiment_by_name(name).experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id], runs

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
    parent, children, runs = _search(registry, name)
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


def test_a_search_whose_budget_covers_3_of_8_trials_runs_3_on_the_cluster_and_says_so(scale_env, cli) -> None:  # type: ignore[no-untyped-def]
    """`gravityml plan` prices one trial at the site; a budget of 3.5 trials covers 3 of the 8, and with
    cap_to_budget the cluster runs those 3 (two at a time) and the run says why."""
    import re

    import yaml

    name = "cancer-ray-tune-capped"
    spec = {"name": name, "task": "supervised",
            "data": {"source": "sklearn:breast_cancer", "target": "target", "split": {"test": 0.25, "seed": 3}},
            "model": {"type": "random_forest", "params": {"n_estimators": 20}},
            "compute": {"accelerator": "cpu", "threads": 1},
            "placement": {"estimate": {"hours": 1.0, "hardware": "cpu", "devices": 1}},
            "tune": {"metric": "test/accuracy", "trials": 8, "max_concurrent": 2, "cap_to_budget": True,
                     "space": {"max_depth": {"int": [2, 8]}}}}
    path = scale_env.job(name, spec)
    code, out, err = cli("plan", str(path), "--catalog", str(scale_env.catalog), "--site", scale_env.site, "--no-measure")
    assert code == 0, err
    per_trial = float(re.search(r"search: 8 trials x ([0-9.]+) \$", out).group(1))  # type: ignore[union-attr]
    assert per_trial > 0.01, out
    spec["placement"]["budget_usd"] = round(3.5 * per_trial, 6)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    code, out, err = cli("train", str(path), "--catalog", str(scale_env.catalog), "--site", scale_env.site)
    assert code == 0, (out + err)[-4000:]
    registry = scale_env.registry()
    parent, children, runs = _search(registry, name)
    forecast = parent.data.tags["gravityml.search_forecast"]
    assert len(children) == 3, (forecast, [r.info.run_name for r in runs])
    assert "3 trials fit); cap_to_budget: running 3" in forecast
    assert parent.data.tags["gravityml.stop_reason"] == "ran 3 of 3 trials"
    assert "Ray Tune over the cluster, 2 trials at once" in parent.data.tags["gravityml.ray_tune"]
    (version,) = registry.search_model_versions(f"name='{name}'")
    assert version.run_id in {c.info.run_id for c in children}


def test_a_trial_that_cannot_stop_itself_is_killed_at_the_cap_and_the_search_stays_within_its_budget(  # type: ignore[no-untyped-def]
    scale_env, cli,
) -> None:
    """The random sampler (seed 6) draws 5, 5, 40,000 and 5 trees; the 40,000-tree fit would run far past the
    45 s of the site's time (1 $/h) that the budget buys, and cannot stop at a report: Ray Tune kills it."""
    name = "cancer-ray-tune-killed"
    budget = 45.0 / 3600.0
    spec = {"name": name, "task": "supervised",
            "data": {"source": "sklearn:breast_cancer", "target": "target", "split": {"test": 0.25, "seed": 3}},
            "model": {"type": "random_forest"},
            "compute": {"accelerator": "cpu", "threads": 1},
            "placement": {"budget_usd": budget, "estimate": {"hours": 0.00001, "hardware": "cpu", "devices": 1}},
            "tune": {"metric": "test/accuracy", "trials": 4, "max_concurrent": 2, "search": "random", "seed": 6,
                     "space": {"n_estimators": {"choice": [5, 40000]}}}}
    path = scale_env.job(name, spec)
    code, out, err = cli("train", str(path), "--catalog", str(scale_env.catalog), "--site", scale_env.site)
    assert code == 0, (out + err)[-4000:]
    registry = scale_env.registry()
    parent, children, runs = _search(registry, name)
    assert parent.data.tags["gravityml.stop_reason"].startswith("budget: the running trials were stopped"), \
        parent.data.tags["gravityml.stop_reason"]
    killed = [c for c in children if c.data.params.get("trial.n_estimators") == "40000"]
    assert killed and all(c.info.status == "KILLED" for c in killed), [(c.info.status, c.data.params) for c in children]
    assert all(c.data.tags["gravityml.trial_state"] == "stopped for budget at the cap" for c in killed)
    assert 0 < parent.data.metrics["cost/metered_usd"] <= budget, parent.data.metrics
    (version,) = registry.search_model_versions(f"name='{name}'")
    assert registry.get_run(version.run_id).data.params["trial.n_estimators"] == "5"
