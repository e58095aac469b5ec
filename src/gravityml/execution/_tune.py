"""A budget-capped hyperparameter search: the spec's ``tune:`` section, run with Optuna (layer 4).

:func:`run_search` is what :func:`~gravityml.execution._local.run_placed` does with a spec that has a
``tune:`` section, wherever the job was placed (this machine, or a site's cluster through the Ray
Jobs API, whose driver runs the same search there). Each trial is the job with the values Optuna's
sampler drew (``model.params`` or ``train``), trained by the platform's own trainers, tracked as an
MLflow child run (``mlflow.parentRunId``) of one parent run, with its model stored on it.

Budget: before the first trial the search is forecast (trials x one trial's forecast at the chosen
site) against what remains of the budget, and refused when over it (``tune.cap_to_budget: true``
runs the trials that fit instead). While it runs, one meter charges the site's rate for the whole
search: no trial starts unless the metered cost plus one trial (its forecast, or the dearest trial
metered so far) fits under the cap, and under a cap the trials run in a worker process that the
search kills when the metered cost reaches the cap (``_trialproc``), so a search never spends more
than its budget; the best complete trial so far is registered with the reason.

``scheduler: asha`` prunes trials by successive halving (Optuna's ``SuccessiveHalvingPruner``) on
the per-epoch value of the metric on the validation rows (``test/accuracy`` -> ``val/accuracy``;
``val/loss`` when the model reports no such value, negated for ``mode: max``). Models without an
epoch loop run every trial out (the run's ``asha`` tag says so).

The study is kept in ``study.db`` (SQLite) in the job's checkpoint folder: ``train --resume``
continues a search that was stopped or killed, with the trials already run. The best trial's model
is registered once, from its child run, with the search in its lineage; the parent run carries the
best trial's metrics and ``plots/search.png`` (the value of each trial, the best so far, and the
parameters' importances).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gravityml._typing import Metrics, MetricSink, Params, PathLikeStr
from gravityml.errors import BudgetError, GravityMLError, SpecError, TrainingError
from gravityml.execution._job import PlacedJob, ensure_experiment, spec_digest
from gravityml.execution._local import (
    JobResult,
    TeeSink,
    _load_data,
    _log_job,
    _registered_result,
    store_trained,
)
from gravityml.execution._placement import record_egress, record_metered, start_meter
from gravityml.execution._raytune import on_ray_cluster
from gravityml.paradigms import TrainContext, train
from gravityml.spec import JobSpec, parse_spec
from gravityml.spec._tune import TRAIN_KEYS, Distribution, TuneSpec
from gravityml.tracking import LINEAGE_PREFIX, TrackedRun, Workspace, resolve, start_run

#: Tag of the parent run once its best trial is registered: ``NAME/VERSION``.
REGISTERED_TAG = f"{LINEAGE_PREFIX}search_registered"
PARENT_TAG = "mlflow.parentRunId"


@dataclasses.dataclass
class SearchOutcome:
    """What a search did, as the parent run records it."""

    trials: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    stop_reason: str = ""
    first_failure: str = ""


def trial_spec(job: PlacedJob, values: Mapping[str, Any]) -> JobSpec:
    """The job with one trial's values in ``model.params`` or ``train`` and no ``tune:`` section."""
    dumped = copy.deepcopy(job.spec)
    dumped.pop("tune", None)
    model = dumped.setdefault("model", {})
    params = dict(model.get("params") or {})
    train_section = dict(dumped.get("train") or {})
    for key, value in values.items():
        name = key.removeprefix("train.")
        if key.startswith("train.") or (name in TRAIN_KEYS and key not in params and not _is_model_param(job, key)):
            train_section[name] = value
        else:
            params[key] = value
    model["params"] = params
    dumped["train"] = train_section
    return parse_spec(dumped, base_dir=Path(job.base_dir))


def _is_model_param(job: PlacedJob, key: str) -> bool:
    from gravityml.spec._params import model_param_names

    model = job.spec["model"]
    return key in model_param_names(model["type"], job.spec["task"], model.get("params") or {})


def _distributions(space: Mapping[str, Distribution]) -> dict[str, Any]:
    import optuna

    out: dict[str, Any] = {}
    for key, d in space.items():
        if d.uniform is not None:
            out[key] = optuna.distributions.FloatDistribution(d.uniform[0], d.uniform[1])
        elif d.loguniform is not None:
            out[key] = optuna.distributions.FloatDistribution(d.loguniform[0], d.loguniform[1], log=True)
        elif d.int is not None:
            out[key] = optuna.distributions.IntDistribution(d.int[0], d.int[1])
        else:  # Optuna keeps scalars only: a list value (hidden: [64, 32]) is chosen by its JSON text
            assert d.choice is not None
            out[key] = optuna.distributions.CategoricalDistribution([_choice(v) for v in d.choice])
    return out


def _choice(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def _values(space: Mapping[str, Distribution], params: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(params)
    for key, d in space.items():
        if d.choice is not None and isinstance(out.get(key), str) and out[key] not in d.choice:
            out[key] = json.loads(out[key])  # a list value chosen by its JSON text
    return out


def make_study(tune: TuneSpec, storage: Path | None) -> Any:
    """The Optuna study of a search: TPE (or random) sampler with the spec's seed, ASHA or no pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=tune.seed) if tune.search == "optuna-tpe"
               else optuna.samplers.RandomSampler(seed=tune.seed))
    pruner = optuna.pruners.SuccessiveHalvingPruner() if tune.scheduler == "asha" else optuna.pruners.NopPruner()
    return optuna.create_study(
        study_name="search", storage=f"sqlite:///{storage}" if storage is not None else None,
        sampler=sampler, pruner=pruner, direction="maximize" if tune.mode == "max" else "minimize",
        load_if_exists=True,
    )


def intermediate_key(metric: str) -> str:
    """The per-epoch value ASHA compares: the metric on the validation rows (test/x -> val/x)."""
    return "val/" + metric.split("/", 1)[1] if metric.startswith("test/") else metric


class EpochSink:
    """A metric sink that hands each epoch's value of the search's metric on the validation rows to
    :meth:`on_value` (``val/loss`` when the model reports no such value, negated for ``mode: max``)."""

    def __init__(self, metric: str, mode: str) -> None:
        self.key, self.maximise = intermediate_key(metric), mode == "max"
        self.used: str | None = None

    def log_metrics(self, metrics: Metrics, step: int | None = None) -> None:
        if step is None:
            return
        if self.key in metrics:
            key, value = self.key, float(metrics[self.key])
        elif "val/loss" in metrics:  # lower is better: negated when the search maximises
            key, value = "val/loss", (-1.0 if self.maximise else 1.0) * float(metrics["val/loss"])
        else:
            return
        self.used = key
        self.on_value(value, step)

    def on_value(self, value: float, step: int) -> None:
        raise NotImplementedError

    def log_params(self, params: Params) -> None:
        pass

    def log_artifact(self, path: PathLikeStr, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass


class _Pruning(EpochSink):
    """Reports each epoch's value to the Optuna trial and says when ASHA prunes it."""

    def __init__(self, trial: Any, tune: TuneSpec) -> None:
        super().__init__(tune.metric, tune.mode)
        self.trial = trial
        self.pruned_at: int | None = None

    def on_value(self, value: float, step: int) -> None:
        self.trial.report(value, step)
        if self.pruned_at is None and self.trial.should_prune():
            self.pruned_at = step

    def should_stop(self) -> str | None:
        return None if self.pruned_at is None else f"pruned by ASHA after epoch {self.pruned_at}"


def _either(*checks: Callable[[], str | None]) -> Callable[[], str | None]:
    def should_stop() -> str | None:
        return next((reason for check in checks if (reason := check())), None)

    return should_stop


def forecast_check(job: PlacedJob, tune: TuneSpec, done: int = 0) -> tuple[int, str]:
    """How many trials the search runs (the spec's, or what the budget covers with cap_to_budget),
    and the forecast line; refuses a search whose forecast is over the budget."""
    forecast = tune.forecast(job.forecast_usd, job.budget_usd)
    if not forecast.over_budget:
        return tune.trials, forecast.line()
    if not tune.cap_to_budget or forecast.trials_that_fit <= done:
        if tune.cap_to_budget:
            fix = "raise placement.budget_usd (or the experiment's budget in the catalog)"
        else:
            fix = (f"set tune.trials: {forecast.trials_that_fit}, or tune.cap_to_budget: true to run the trials "
                   "the budget covers, or raise placement.budget_usd")
        raise BudgetError(
            f"the search of {job.name!r} is forecast over its budget: {forecast.line()}",
            allowed=f"<= {forecast.budget_usd:.4f} $ ({forecast.trials_that_fit} trials)", got=f"{forecast.total_usd:.4f} $",
            fix=fix,
        )
    return forecast.trials_that_fit, forecast.line() + f"; cap_to_budget: running {forecast.trials_that_fit}"


def run_search(
    job: PlacedJob,
    spec: JobSpec,
    *,
    workspace: Workspace,
    where: Mapping[str, str],
    resume: bool = False,
    sinks: Sequence[MetricSink] = (),
    extra_tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> JobResult:
    """Run the search ``spec.tune`` describes and register its best trial; see the module's docstring."""
    import optuna

    tune = spec.tune
    assert tune is not None
    ws = workspace.ensure()
    digest = spec_digest(spec)
    checkpoint_dir = ws.checkpoints_dir / f"{spec.name}-{digest[:12]}"
    run_id_file = checkpoint_dir / "run_id"
    previous = run_id_file.read_text().strip() if resume and run_id_file.exists() else None
    if previous is not None:
        registered = ws.client.get_run(previous).data.tags.get(REGISTERED_TAG)
        if registered is not None:  # killed after registering its best: nothing to run again
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
            return _registered_result(job.mlflow_experiment, ws, resolve(ws, registered))
    if not resume and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    study = make_study(tune, checkpoint_dir / "study.db")
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)  # a trial the killed search left
    done = len(study.trials)
    trials, forecast_line = forecast_check(job, tune, done)
    dataset = _load_data(spec, job)
    lineage = {
        "task": spec.task, "model_type": spec.model.type,
        "data_uri": dataset.uri if dataset else "", "data_fingerprint": dataset.fingerprint if dataset else "",
        **job.plan, **dict(where), "spec_sha256": digest,
        "search": tune.search, "scheduler": tune.scheduler, "search_metric": f"{tune.metric} ({tune.mode})",
        **dict(extra_tags or {}),
    }
    tags = {f"{LINEAGE_PREFIX}{k}": str(v) for k, v in lineage.items()}
    ensure_experiment(ws, job)
    metered_job = dataclasses.replace(job, forecast_usd=job.forecast_usd * trials)
    outcome = SearchOutcome(trials=trials)
    with start_run(ws, job.mlflow_experiment, run_name=f"{spec.name}-search", tags=tags,
                   run_id=previous or run_id) as parent:
        run_id_file.write_text(parent.run_id)
        if previous is None:
            _log_job(parent, spec, dataset)
            parent.log_params({"tune": tune.model_dump(mode="json")})
            if job.moves_from is not None and dataset is not None:
                record_egress(job, ws, parent.run_id, job.moved_gb)
        parent.set_tags({f"{LINEAGE_PREFIX}search_forecast": forecast_line})
        meter = start_meter(metered_job, ws, parent)
        try:
            if tune.max_concurrent > 1 and on_ray_cluster():  # trials at once over the site's nodes
                from gravityml.execution._raytune import run_ray_tune

                study = run_ray_tune(job, tune, ws, parent, trials - done, meter, outcome, checkpoint_dir)
            else:
                if tune.max_concurrent > 1:
                    lineage["concurrency"] = ("one trial at a time in this process (max_concurrent "
                                              f"{tune.max_concurrent} applies on a Ray site)")
                _trials(study, job, tune, ws, parent, dataset, meter, outcome, lineage, trials, sinks)
        finally:
            record_metered(metered_job, ws, parent, meter)
        return _finish(study, job, spec, tune, ws, parent, outcome, lineage, checkpoint_dir)


def _trials(study: Any, job: PlacedJob, tune: TuneSpec, ws: Workspace, parent: TrackedRun, dataset: Any,
            meter: Any, outcome: SearchOutcome, lineage: dict[str, str], trials: int,
            sinks: Sequence[MetricSink]) -> None:
    """The trials one at a time; under a cap, in a worker process killed at it (see ``_trialproc``)."""
    from gravityml.execution._trialproc import StoppedAtCap, TrialWorker, capped

    worker = TrialWorker(job, ws, parent.run_id, meter) if capped(meter) else None
    try:
        if worker is not None:
            worker.start()
            parent.set_tags({f"{LINEAGE_PREFIX}trials_in": "a worker process that the search kills when the metered "
                             f"cost reaches the cap (started in {worker.startup_s:.1f} s)"})
        _trial_loop(study, job, tune, ws, parent, dataset, meter, outcome, lineage, trials, sinks, worker)
    except StoppedAtCap:  # killed at the cap before its worker was ready: no trial had started
        outcome.stop_reason = meter.stop_reason or "budget"
    finally:
        if worker is not None:
            worker.close()


def _trial_loop(study: Any, job: PlacedJob, tune: TuneSpec, ws: Workspace, parent: TrackedRun, dataset: Any,
                meter: Any, outcome: SearchOutcome, lineage: dict[str, str], trials: int,
                sinks: Sequence[MetricSink], worker: Any) -> None:
    import optuna

    from gravityml.execution._trialproc import StoppedAtCap

    distributions = _distributions(tune.space)
    per_trial, basis = job.forecast_usd, "forecast"  # then the dearest trial metered so far, if dearer
    while len(study.trials) < trials:
        if meter.should_stop() is not None:
            outcome.stop_reason = meter.stop_reason or "budget"
            return
        reserve = worker.reserve_usd if worker is not None else 0.0  # the grace the worker is killed ahead of the cap
        if meter.cap_usd is not None and per_trial > 0 and meter.usd + per_trial > meter.cap_usd - reserve:
            outcome.stop_reason = (f"budget: metered {meter.usd:.4f} $ + one trial ({basis}) {per_trial:.4f} $ "
                                   f"would cross the cap of {meter.cap_usd:.4f} $; no new trial started")
            return
        before = meter.usd
        trial = study.ask(distributions)
        values = _values(tune.space, trial.params)
        pruning = _Pruning(trial, tune)
        try:
            spec = trial_spec(job, values)
            if worker is None:
                result, run_id, source = _one_trial(spec, job, ws, parent, trial.number, values, dataset,
                                                    [pruning, *sinks], _either(meter.should_stop, pruning.should_stop))
                metrics = result.metrics
            else:  # killed at the cap, whatever the trial is doing
                metrics, run_id, source = worker.run(spec, trial.number, values, [pruning, *sinks], pruning.should_stop)
        except StoppedAtCap as stopped:
            if stopped.run_id:
                trial.set_user_attr("run_id", stopped.run_id)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            outcome.failed += 1
            outcome.stop_reason = stopped.reason
            return
        except GravityMLError as err:  # this trial's values are refused (or its training failed): the next
            outcome.failed += 1
            outcome.first_failure = outcome.first_failure or f"trial {trial.number} ({values}): {err}"
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        trial.set_user_attr("run_id", run_id)
        if meter.usd - before > per_trial:
            per_trial, basis = meter.usd - before, "the dearest metered so far"
        if meter.stop_reason is not None:  # stopped for budget mid-trial: its model is not a result
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            outcome.failed += 1
            outcome.stop_reason = meter.stop_reason
            return
        if pruning.pruned_at is not None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            ws.client.set_tag(run_id, f"{LINEAGE_PREFIX}trial_state", pruning.should_stop() or "pruned")
            outcome.pruned += 1
            continue
        if tune.metric not in metrics or not math.isfinite(metrics[tune.metric]):
            available = sorted(k for k in metrics if not k.startswith(("time/", "cost/")))
            raise SpecError("tune.metric", f"the trials report no finite {tune.metric!r}", allowed=available,
                            got=tune.metric, fix="name one of the metrics a run of this job logs")
        trial.set_user_attr("source", source)
        study.tell(trial, float(metrics[tune.metric]))
        ws.client.set_tag(run_id, f"{LINEAGE_PREFIX}trial_state", "complete")
        outcome.complete += 1
        if tune.scheduler == "asha" and pruning.used is None:
            lineage["asha"] = f"no per-epoch values from {job.spec['model']['type']}: every trial ran out"
        elif pruning.used is not None:
            lineage["asha"] = f"successive halving on {pruning.used} per epoch"


def _one_trial(spec: JobSpec, job: PlacedJob, ws: Workspace, parent: TrackedRun, number: int | str,
               values: Mapping[str, Any], dataset: Any, sinks: Sequence[MetricSink],
               should_stop: Callable[[], str | None],
               on_start: Callable[[str], None] | None = None) -> tuple[Any, str, str]:
    """One trial as a child run of the search: trained, its model stored; (result, run id, model URI)."""
    tags = {PARENT_TAG: parent.run_id, f"{LINEAGE_PREFIX}trial": str(number),
            f"{LINEAGE_PREFIX}site": job.site, f"{LINEAGE_PREFIX}search_run_id": parent.run_id}
    with ws.scratch("trial") as tmp, start_run(ws, job.mlflow_experiment, run_name=f"{spec.name}-trial-{number}",
                                                 tags=tags) as run:
        if on_start is not None:
            on_start(run.run_id)
        run.log_params({"trial": dict(values)})
        ctx = TrainContext(spec=spec, workdir=Path(tmp), dataset=dataset, sink=TeeSink([run, *sinks]),
                           should_stop=should_stop)
        result = train(ctx)
        source = store_trained(run, result, Path(tmp), dataset)
        return result, run.run_id, source


def _finish(study: Any, job: PlacedJob, spec: JobSpec, tune: TuneSpec, ws: Workspace, parent: TrackedRun,
            outcome: SearchOutcome, lineage: dict[str, str], checkpoint_dir: Path) -> JobResult:
    import optuna

    from gravityml.tracking import register

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    states = [t.state for t in study.trials]
    outcome.complete = len(complete)
    outcome.pruned = states.count(optuna.trial.TrialState.PRUNED)
    outcome.failed = states.count(optuna.trial.TrialState.FAIL)
    stop = outcome.stop_reason or f"ran {len(study.trials)} of {outcome.trials} trials"
    summary = {"trials_run": str(len(study.trials)), "trials_complete": str(outcome.complete),
               "trials_pruned": str(outcome.pruned), "trials_failed": str(outcome.failed), "stop_reason": stop}
    parent.set_tags({f"{LINEAGE_PREFIX}{k}": v for k, v in summary.items()})
    parent.log_metrics({"tune/trials_complete": outcome.complete, "tune/trials_pruned": outcome.pruned,
                        "tune/trials_failed": outcome.failed})
    if not complete:
        why = outcome.first_failure or stop
        raise TrainingError(f"the search of {spec.name!r} has no complete trial to register: {why[:400]}",
                            allowed="at least one trial that trains to the end", got=summary,
                            fix="widen the budget or the trials, or fix the space so that its values train")
    best = study.best_trial
    best_values = _values(tune.space, best.params)
    best_run = ws.client.get_run(best.user_attrs["run_id"])
    parent.log_metrics({k: v for k, v in best_run.data.metrics.items()})
    parent.log_params({"best": best_values})
    with ws.scratch("search") as tmp:
        plot = _plot(study, tune, Path(tmp) / "search.png")
        parent.log_artifact(plot, "plots")
    lineage.update({"search_run_id": parent.run_id, "best_trial": str(best.number), **summary,
                    "best_params": json.dumps(best_values, sort_keys=True)})
    version = register(ws, spec.name, run_id=best_run.info.run_id, source=best.user_attrs["source"],
                       tags={f"{LINEAGE_PREFIX}{k}": str(v) for k, v in lineage.items()},
                       description=spec.description)
    parent.set_tags({REGISTERED_TAG: version.ref, f"{LINEAGE_PREFIX}best_trial": str(best.number),
                     f"{LINEAGE_PREFIX}best_run_id": best_run.info.run_id})
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return JobResult(
        name=spec.name, version=version.version, run_id=best_run.info.run_id, experiment=job.mlflow_experiment,
        metrics=dict(best_run.data.metrics), artifact_uri=str(best_run.info.artifact_uri), workspace=ws.root,
        tracking_uri=ws.tracking_uri, lineage={k: str(v) for k, v in lineage.items()},
    )


def _plot(study: Any, tune: TuneSpec, path: Path) -> Path:
    """The value of each trial with the best so far, and the parameters' importances (2+ complete trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    numbers = [t.number for t in complete]
    values = [float(t.value) for t in complete]
    pick = max if tune.mode == "max" else min
    best = [pick(values[: i + 1]) for i in range(len(values))]
    left.scatter(numbers, values, label="trial", color="tab:blue")
    left.step(numbers, best, where="post", label="best so far", color="tab:orange")
    pruned = [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    if pruned:
        left.scatter(pruned, [min(values)] * len(pruned), marker="x", color="tab:gray", label="pruned (ASHA)")
    left.set_xlabel("trial")
    left.set_ylabel(tune.metric)
    left.set_title(f"search history ({tune.search}, scheduler {tune.scheduler})")
    left.legend()
    importances: dict[str, float] = {}
    if len(complete) >= 2 and len(tune.space) >= 1:
        try:
            importances = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError):  # all values equal, or one parameter only took one value
            importances = {}
    if importances:
        names = list(importances)[::-1]
        right.barh(names, [importances[n] for n in names], color="tab:green")
        right.set_xlabel("importance (fANOVA)")
    else:
        right.text(0.5, 0.5, "importances need 2+ complete trials\nwith different values", ha="center", va="center")
        right.set_axis_off()
    right.set_title("parameter importances")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["REGISTERED_TAG", "EpochSink", "SearchOutcome", "forecast_check", "intermediate_key", "make_study", "run_search",
           "trial_spec"]
