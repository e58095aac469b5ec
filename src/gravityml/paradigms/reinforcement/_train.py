"""Reinforcement learning on Stable-Baselines3: check, build, learn with feedback, keep the best.

The order is the one a person debugging a job wants: the spec's hyperparameters and precision are
checked first (no env is made for a typo), then a user's environment goes through Gymnasium's
checker, then the algorithm must suit the action space, and only then does anything train.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from gravityml.compute import resolve_device
from gravityml.errors import SpecError, TrainingError
from gravityml.models._policy import PolicyModel, policy_schema
from gravityml.paradigms._base import TrainContext, TrainResult
from gravityml.paradigms.reinforcement._algos import (
    OFF_POLICY,
    algorithm_class,
    algorithm_kwargs,
    check_action_space,
    check_precision,
)
from gravityml.paradigms.reinforcement._envs import check_user_env, env_description, spaces_of, vec_env
from gravityml.paradigms.reinforcement._feedback import (
    BackgroundSink,
    FeedbackCallback,
    SinkWriter,
    learning_curve_png,
    write_tables,
)
from gravityml.paradigms.reinforcement._resume import (
    BEST,
    BUFFER,
    MODEL,
    Checkpoint,
    Progress,
    load_envs,
    load_rng,
    read_checkpoint,
    restore_rng,
)

EVALUATIONS_PER_RUN = 20
LOG_POINTS_PER_RUN = 100


def train(ctx: TrainContext) -> TrainResult:
    """Train ``ctx.spec`` (task reinforcement) and return its best policy.

    On the CPU torch runs with ``compute.threads`` threads, default 1: the policy networks are
    small, so splitting each matrix product across cores costs more than it saves (measured here:
    bare SB3 PPO on CartPole ran 8x slower with 2 threads than with 1 on a busy 2-core machine).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(ctx.spec.compute.threads or 1)
    try:
        return _train(ctx)
    finally:
        torch.set_num_threads(before)


def _train(ctx: TrainContext) -> TrainResult:
    spec = ctx.spec
    kind = spec.model.type
    if spec.train.timesteps is None:
        raise SpecError(
            "train.timesteps",
            "a reinforcement job needs a number of environment steps",
            allowed="an integer >= 1",
            got=None,
            fix="add train: {timesteps: 50000}",
        )
    total = spec.train.timesteps
    kwargs = algorithm_kwargs(spec)
    device = resolve_device(spec.compute.accelerator, spec.compute.devices)
    precision, precision_why = check_precision(spec, device)
    env = env_description(spec)
    checker_warnings = check_user_env(env) if env["entry_point"] else []
    observation, action = spaces_of(env)
    check_action_space(kind, action)

    assert spec.env is not None
    seed = spec.train.seed
    train_env = vec_env(env, spec.env.n_envs, seed)
    eval_env = vec_env(env, 1, seed + 10_000)
    folder = Path(ctx.checkpoint_dir or ctx.workdir / "checkpoints")
    folder.mkdir(parents=True, exist_ok=True)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = read_checkpoint(folder) if ctx.resume else None
    saved = checkpoint.progress if checkpoint else None
    model, train_env, eval_env, differs_by = _build(
        kind, kwargs, (train_env, eval_env), checkpoint, seed=seed, device=device.torch_device
    )
    progress = saved or Progress()
    resumed_from = saved.timesteps if saved else None
    buffer_at_resume = int(model.replay_buffer.size()) if saved and kind in OFF_POLICY else None

    from stable_baselines3.common.logger import Logger

    sink = BackgroundSink(ctx.sink)
    writer = SinkWriter(sink, total // LOG_POINTS_PER_RUN)
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    eval_freq = spec.train.eval_freq or max(total // EVALUATIONS_PER_RUN, 1)
    callback = FeedbackCallback(
        sink=sink,
        progress=progress,
        eval_env=eval_env,
        eval_freq=eval_freq,
        eval_episodes=spec.train.eval_episodes,
        target_reward=spec.train.target_reward,
        checkpoint_dir=folder,
        checkpoint_freq=spec.train.checkpoint_freq or eval_freq,
        off_policy=kind in OFF_POLICY,
        should_stop=ctx.should_stop,
        counters=checkpoint.counters if checkpoint else None,
    )
    sink.log_params({"rl": {"algorithm": kind, "device": device.torch_device, "eval_freq": eval_freq}})
    remaining = max(total - progress.timesteps, 0)
    started, start_steps, cpu_started = time.perf_counter(), model.num_timesteps, time.process_time()
    if checkpoint is not None:
        states = load_rng(checkpoint)
        if states is not None:  # last, so nothing built above draws from the restored streams
            restore_rng(states)
    if remaining:
        try:
            model.learn(
                remaining,
                callback=callback,
                reset_num_timesteps=saved is None,
                # on-policy: dump every rollout; off-policy: every 4 episodes (SB3's default)
                log_interval=1 if kind not in OFF_POLICY else 4,
            )
        except (AssertionError, ValueError) as exc:
            raise TrainingError(
                f"{kind} stopped with an error from Stable-Baselines3: {exc}",
                allowed=f"the hyperparameters {kind} accepts",
                got=dict(spec.model.params),
                fix="check model.params against https://stable-baselines3.readthedocs.io",
            ) from None
        finally:
            writer.flush()
            sink.close()
    else:
        sink.close()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    steps_run = model.num_timesteps - start_steps
    progress.timesteps = model.num_timesteps
    stop_reason = progress.stop_reason or f"timesteps done ({model.num_timesteps} >= {total})"

    # The registered policy is the best one evaluated (RL Zoo does the same); its own evaluation on
    # a fresh seed is the run's test score, so the number shown is the one a rollout will see.
    source = "final"
    best_state = callback.best_state
    if best_state is None and saved is not None and (folder / BEST).exists():  # best was before the crash
        best_state = type(model.policy).load(str(folder / BEST), device=device.torch_device).state_dict()
    if best_state is not None:
        model.policy.load_state_dict(best_state)
        source = f"best evaluation ({progress.best_mean_reward:.4g} at {progress.best_timestep} steps)"
    test_env = vec_env(env, 1, seed + 20_000)
    from stable_baselines3.common.evaluation import evaluate_policy

    returns, lengths = evaluate_policy(
        model, test_env, n_eval_episodes=spec.train.eval_episodes, deterministic=True, return_episode_rewards=True
    )
    for e in (train_env, eval_env, test_env):
        e.close()

    title = f"{spec.name}: {kind} on {env['id'] or env['entry_point']}"
    artifacts = [learning_curve_png(progress, ctx.workdir / "learning_curve.png", title, spec.train.target_reward)]
    artifacts += write_tables(progress, ctx.workdir)
    metrics = {
        "test/mean_reward": float(np.mean(returns)),
        "test/std_reward": float(np.std(returns)),
        "test/mean_ep_length": float(np.mean(lengths)),
        "train/timesteps": float(model.num_timesteps),
        "train/episodes": float(len(progress.episodes)),
        "train/wall_s": wall,
        "train/steps_per_s": steps_run / wall if wall > 0 else 0.0,
        "train/cpu_s": cpu,
    }
    if progress.best_mean_reward is not None:
        metrics["eval/best_mean_reward"] = float(progress.best_mean_reward)
    if buffer_at_resume is not None:
        metrics["train/replay_buffer_at_resume"] = float(buffer_at_resume)
    tags = {
        "stop_reason": stop_reason,
        "policy_source": source,
        "precision_used": precision,
        "precision_reason": precision_why,
        "device": device.torch_device,
    }
    if resumed_from is not None:
        tags["resumed_from_timesteps"] = str(resumed_from)
        # Which pieces a resume from this checkpoint could not restore (empty: the same result as uninterrupted).
        tags["resume_exact"] = "false" if differs_by else "true"
        if differs_by:
            tags["resume_differs_by"] = " | ".join(differs_by)[:4000]
    if checker_warnings:
        tags["env_checker_warnings"] = " | ".join(checker_warnings)[:4000]
    meta = {
        "algorithm": kind,
        "env": env,
        "observation_space": observation,
        "action_space": action,
        "task": "reinforcement",
        "test_mean_reward": metrics["test/mean_reward"],
    }
    policy = PolicyModel(model.policy, schema=policy_schema(observation, action), meta=meta)
    return TrainResult(model=policy, metrics=metrics, artifacts=artifacts, params=_loggable(kwargs), tags=tags)


def _build(
    kind: str,
    kwargs: dict[str, Any],
    envs: tuple[Any, Any],
    checkpoint: Checkpoint | None,
    *,
    seed: int,
    device: str,
) -> tuple[Any, Any, Any, list[str]]:
    """The algorithm, its training and evaluation envs, and what a resume could not restore.

    From a checkpoint that kept the envs, they replace the new ones and the model goes on from the
    observations it saved (``force_reset=False``); otherwise the envs start from their seeds.
    """
    cls = algorithm_class(kind)
    train_env, eval_env = envs
    if checkpoint is not None:
        saved_envs = load_envs(checkpoint) if kind not in OFF_POLICY else None
        differs = list(checkpoint.differs_by)
        if saved_envs is not None:
            for fresh in envs:
                fresh.close()
            train_env, eval_env = saved_envs
            model = cls.load(str(checkpoint.path / MODEL), env=None, device=device)
            model.set_env(train_env, force_reset=False)
        else:
            model = cls.load(str(checkpoint.path / MODEL), env=train_env, device=device)
        if kind in OFF_POLICY and (checkpoint.path / BUFFER).exists():
            model.load_replay_buffer(str(checkpoint.path / BUFFER))
        return model, train_env, eval_env, differs
    try:
        return cls(env=train_env, seed=seed, device=device, verbose=0, **kwargs), train_env, eval_env, []
    except (AssertionError, ValueError, TypeError) as exc:
        raise TrainingError(
            f"{kind} refused its hyperparameters: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}",
            allowed=f"the hyperparameters {kind} accepts (`gravityml validate JOB.yaml` lists them)",
            got={k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool))},
            fix="correct model.params (see https://stable-baselines3.readthedocs.io)",
        ) from None


def _loggable(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)) for k, v in kwargs.items()}
