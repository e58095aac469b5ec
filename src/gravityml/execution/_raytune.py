"""The search on a Ray site's cluster with Ray Tune: ``max_concurrent`` trials at once over its nodes.

:func:`~gravityml.execution._tune.run_search` hands the trials here when the job runs on a Ray
cluster (the driver of a Ray job) and ``tune.max_concurrent`` is above 1. Ray Tune runs them with the
same space and Optuna's sampler (``OptunaSearch``), ``ASHAScheduler`` for ``scheduler: asha``, and
each trial as one Ray Tune trial placed by Ray on any node: the same child run, trainer and stored
model as a trial in one process. Every trial reads its data where it runs (the site's store).

Budget: a searcher gate suggests no new trial once the metered cost plus one trial would cross the
cap (running trials go on), and a stopper ends the experiment when the metered cost reaches the cap
less :data:`STOP_GRACE_S` of the site's time: Ray Tune stops every running trial, and kills one that
cannot stop at a report (a scikit-learn fit) a second later, so the search stays within its budget. Afterwards the trials are copied into an Optuna study, so that choosing and
registering the best, the plot and the lineage are those of a search in one process.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from gravityml.errors import GravityMLError
from gravityml.execution._job import PlacedJob
from gravityml.spec._tune import TuneSpec
from gravityml.tracking import LINEAGE_PREFIX, TrackedRun, Workspace

#: Seconds of the site's time kept back from the cap: Ray Tune stops every trial (killing, a second later,
#: one that cannot stop at a report), ends its experiment, and the trials are read, before the meter is.
STOP_GRACE_S = 12.0

#: The budget checks of the searches running in this driver, by key (the gate and the stopper are
#: pickled by Ray Tune with its experiment state; they carry only the key).
_CHECKS: dict[str, dict[str, Callable[[], str | None]]] = {}


def on_ray_cluster() -> bool:
    """Whether this process is the driver of a job on a Ray cluster (a Ray site's job)."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a base dependency
        return False
    return bool(ray.is_initialized() or os.environ.get("RAY_ADDRESS"))


def _trainable(job_json: str, parent_run_id: str, metric: str, mode: str,
               space: dict[str, Any]) -> Callable[[dict], None]:
    """What each Ray Tune trial runs: the job with the trial's values, as a child run of the search."""

    def trial(config: dict[str, Any]) -> None:
        import ray
        import ray.tune

        from gravityml.execution._local import _load_data
        from gravityml.execution._tune import EpochSink, _one_trial, _values, trial_spec
        from gravityml.spec._tune import Distribution

        job = PlacedJob.from_json(job_json)
        ws = Workspace.current().ensure()
        parent = TrackedRun(ws, parent_run_id)
        values = _values({k: Distribution(**v) for k, v in space.items()}, config)
        trial_id = ray.tune.get_context().get_trial_id()
        holder: dict[str, Any] = {"run_id": "", "score": math.nan}

        class Report(EpochSink):
            """Each epoch's value to Ray Tune (ASHA decides on it; a stop ends the trial there)."""

            def on_value(self, value: float, step: int) -> None:
                if holder["run_id"]:
                    holder["score"] = value
                    ray.tune.report({"score": value, "epoch": step, "run_id": holder["run_id"]})

        def started(run_id: str) -> None:
            holder["run_id"] = run_id
            node = ray.get_runtime_context().get_node_id()
            ws.client.set_tag(run_id, f"{LINEAGE_PREFIX}ray_node_id", str(node))
            ws.client.set_tag(run_id, f"{LINEAGE_PREFIX}ray_trial_id", trial_id)

        try:
            spec = trial_spec(job, values)
            result, run_id, source = _one_trial(spec, job, ws, parent, trial_id, values, _load_data(spec, job),
                                                [Report(metric, mode)], lambda: None, on_start=started)
        except GravityMLError as err:
            ray.tune.report({"score": holder["score"], "failed": str(err)[:500], "run_id": holder["run_id"]})
            return
        final = result.metrics.get(metric)
        report: dict[str, Any] = {"score": holder["score"] if math.isfinite(holder["score"]) else final,
                                  "run_id": run_id, "source": source, "metrics_json": _json(result.metrics)}
        if final is not None and math.isfinite(final):
            report["final"] = float(final)
        ray.tune.report(report)

    return trial


def _json(metrics: dict[str, float]) -> str:
    import json

    return json.dumps({k: float(v) for k, v in metrics.items()})


def run_ray_tune(job: PlacedJob, tune: TuneSpec, ws: Workspace, parent: TrackedRun, trials: int, meter: Any,
                 outcome: Any, checkpoint_dir: Any) -> Any:
    """Run the trials with Ray Tune; returns an Optuna study holding them (see the module's docstring)."""
    import optuna
    import ray
    from ray import tune as ray_tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter, Searcher
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.stopper import Stopper

    from gravityml.execution._tune import _distributions

    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # per-epoch reports carry no final value
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not ray.is_initialized():
        import logging

        ray.init(logging_level=logging.ERROR, log_to_driver=True)
    key = uuid.uuid4().hex
    per_trial = float(job.forecast_usd)

    def gate() -> str | None:
        if (meter.cap_usd is not None and per_trial > 0
                and meter.usd + per_trial > meter.cap_usd - STOP_GRACE_S / 3600.0 * meter.rate_usd_per_hour):
            return (f"budget: metered {meter.usd:.4f} $ + one trial (forecast) {per_trial:.4f} $ "
                    f"would cross the cap of {meter.cap_usd:.4f} $; no new trial started")
        return None

    def at_cap() -> str | None:  # ahead of the cap by what stopping the trials and reading the meter take
        reason = meter.should_stop()
        if reason is None and meter.seconds_left() <= STOP_GRACE_S:
            reason = meter.stop_reason = (
                f"budget: the running trials were stopped when the metered cost reached the cap of "
                f"{meter.cap_usd:.4f} $ less {STOP_GRACE_S:.0f} s of the site's time; no new trial started")
        return reason

    _CHECKS[key] = {"gate": gate, "meter": at_cap}
    # A trial that cannot stop at a report (one scikit-learn fit) is killed this many seconds after the stop.
    os.environ.setdefault("TUNE_FORCE_TRIAL_CLEANUP_S", "1")

    class BudgetGate(ConcurrencyLimiter):
        def __init__(self, searcher: Any, max_concurrent: int, check_key: str) -> None:
            super().__init__(searcher, max_concurrent=max_concurrent)
            self.check_key = check_key

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if "final" in result:  # per-epoch reports are ASHA's ("score"); Optuna's sampler takes the final one
                super().on_trial_result(trial_id, result)

        def suggest(self, trial_id: str) -> Any:
            checks = _CHECKS.get(self.check_key, {})
            reason = checks["meter"]() if checks else None
            reason = reason or (checks["gate"]() if checks else None)
            if reason is not None:
                outcome.stop_reason = outcome.stop_reason or reason
                return Searcher.FINISHED
            return super().suggest(trial_id)

    class BudgetStop(Stopper):
        def __init__(self, check_key: str) -> None:
            self.check_key = check_key

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            checks = _CHECKS.get(self.check_key)
            reason = checks["meter"]() if checks else None
            if reason is not None:
                outcome.stop_reason = reason
            return reason is not None

    distributions = _distributions(tune.space)
    sampler = (optuna.samplers.TPESampler(seed=tune.seed) if tune.search == "optuna-tpe"
               else optuna.samplers.RandomSampler(seed=tune.seed))
    searcher = BudgetGate(OptunaSearch(distributions, metric="final", mode=tune.mode, sampler=sampler),
                          tune.max_concurrent, key)
    from gravityml.paradigms.deep._train import AUTO_MAX_EPOCHS

    train_cfg = job.load_spec().train  # epochs unset: a built-in network's loop runs up to AUTO_MAX_EPOCHS
    epochs = train_cfg.epochs if "epochs" in train_cfg.model_fields_set else max(train_cfg.epochs, AUTO_MAX_EPOCHS)
    # max_t: one report per epoch, then the trial's final one (a trial stopped at max_t never makes it)
    scheduler = (ASHAScheduler(metric="score", mode=tune.mode, max_t=max(epochs, 1) + 1, grace_period=1,
                               reduction_factor=3)
                 if tune.scheduler == "asha" else FIFOScheduler())
    threads = float(job.spec.get("compute", {}).get("threads") or 1)
    space = {k: v.model_dump(exclude_none=True) for k, v in tune.space.items()}
    trainable = ray_tune.with_resources(_trainable(job.to_json(), parent.run_id, tune.metric, tune.mode, space),
                                        {"cpu": threads})
    started = time.monotonic()
    tuner = ray_tune.Tuner(
        trainable,
        tune_config=ray_tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=trials,
                                        max_concurrent_trials=tune.max_concurrent),
        run_config=ray_tune.RunConfig(name="search", storage_path=str(checkpoint_dir / "ray-tune"),
                                      stop=BudgetStop(key), verbose=0),
    )
    try:
        grid = tuner.fit()
    finally:
        _CHECKS.pop(key, None)
    study = _as_study(grid, tune, distributions, ws)
    _end_killed(ws, parent, study)
    parent.set_tags({f"{LINEAGE_PREFIX}ray_tune": f"Ray Tune over the cluster, {tune.max_concurrent} trials at once, "
                     f"{len(study.trials)} trials in {time.monotonic() - started:.0f} s"})
    return study


def _end_killed(ws: Workspace, parent: TrackedRun, study: Any) -> None:
    """End the child runs of trials that Ray killed before their first report (stopped at the cap);
    each is a failed trial of the study."""
    import optuna

    running = ws.client.search_runs(
        [ws.client.get_run(parent.run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}' and attributes.status = 'RUNNING'")
    for run in running:
        ws.client.set_tag(run.info.run_id, f"{LINEAGE_PREFIX}trial", str(len(study.trials)))
        ws.client.set_tag(run.info.run_id, f"{LINEAGE_PREFIX}trial_state", "stopped for budget at the cap")
        ws.client.set_terminated(run.info.run_id, status="KILLED")
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                                  user_attrs={"run_id": run.info.run_id}))


def _as_study(grid: Any, tune: TuneSpec, distributions: dict[str, Any], ws: Workspace) -> Any:
    """The Ray Tune trials as an Optuna study (in memory), in the order they started; their child runs
    ended (a trial ASHA or the budget stopped was ended by Ray, not by its own code)."""
    import optuna

    study = optuna.create_study(direction="maximize" if tune.mode == "max" else "minimize")
    results = sorted((r for r in grid if r.metrics), key=lambda r: r.metrics.get("timestamp", 0))
    for number, res in enumerate(results):
        last = res.metrics
        run_id = str(last.get("run_id") or "")
        params = {k: v for k, v in (res.config or {}).items() if k in distributions}
        attrs: dict[str, Any] = {"run_id": run_id}
        final = last.get("final")
        if last.get("failed"):
            state, value, trial_state = optuna.trial.TrialState.FAIL, None, f"failed: {last['failed']}"
        elif final is not None and math.isfinite(float(final)):
            state, value, trial_state = optuna.trial.TrialState.COMPLETE, float(final), "complete"
            attrs["source"] = last["source"]
        else:
            epoch = last.get("epoch", last.get("training_iteration"))
            state, value = optuna.trial.TrialState.PRUNED, None
            trial_state = f"pruned by ASHA after epoch {epoch}" if tune.scheduler == "asha" else "stopped: budget"
        # A trial that Ray ended before its actor reported its config (killed at the cap on a loaded
        # machine) has no params: Optuna wants one distribution per param, no more.
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: distributions[k] for k in params},
                                                  value=value, state=state, user_attrs=attrs))
        if run_id:
            run = ws.client.get_run(run_id)
            ws.client.set_tag(run_id, f"{LINEAGE_PREFIX}trial", str(number))
            ws.client.set_tag(run_id, f"{LINEAGE_PREFIX}trial_state", trial_state)
            ended = "FAILED" if state == optuna.trial.TrialState.FAIL else "FINISHED"
            if run.info.status != ended:  # Ray stopped its actor at a report (ASHA, the budget): end it here
                ws.client.set_terminated(run_id, status=ended)
    return study


__all__ = ["on_ray_cluster", "run_ray_tune"]
