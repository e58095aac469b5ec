"""The feedback loop: what the agent did, how well it did, and when to stop.

SB3's logger already names what it measures (``rollout/ep_rew_mean``, ``train/value_loss``,
``time/fps``, ...); :class:`SinkWriter` is one more output format for it that forwards to the
job's metric sink, at most about a hundred times per run so that tracking stays cheap next to
the environment steps. :class:`FeedbackCallback` keeps every episode's return, evaluates on a
separate environment, keeps the best policy, checkpoints, and stops early.
"""

from __future__ import annotations

import csv
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gravityml._files import atomic_write
from gravityml._typing import Metrics, MetricSink, Params, PathLikeStr
from gravityml.paradigms.reinforcement._resume import BEST, Progress, save_checkpoint

try:  # SB3 is imported only by reinforcement jobs, which import this module
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import KVWriter
except ImportError as exc:  # pragma: no cover - SB3 is a dependency
    raise ImportError("reinforcement learning needs stable-baselines3: pip install stable-baselines3") from exc

class BackgroundSink:
    """Hands metrics to the job's sink from a worker thread, so the training loop never waits on it.

    An MLflow SQLite write takes tens of milliseconds; done inline at every SB3 log dump it cost
    PPO on CartPole about 20% of its steps per second (benchmarks/rl.py). Calls keep their order;
    :meth:`close` waits for the queue to drain and raises the first error the sink raised.
    """

    def __init__(self, sink: MetricSink) -> None:
        self.sink = sink
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="gravityml-metrics", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    getattr(self.sink, item[0])(*item[1])
                except BaseException as exc:  # noqa: BLE001 - kept and raised in the training thread by close()
                    self._error = exc

    def log_metrics(self, metrics: Metrics, step: int | None = None) -> None:
        self._queue.put(("log_metrics", (dict(metrics), step)))

    def log_params(self, params: Params) -> None:
        self._queue.put(("log_params", (dict(params),)))

    def log_artifact(self, path: PathLikeStr, artifact_path: str | None = None) -> None:
        self._queue.put(("log_artifact", (path, artifact_path)))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._queue.put(("set_tags", (dict(tags),)))

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


class SinkWriter(KVWriter):
    """An SB3 logger output that forwards numeric values to a metric sink, throttled.

    A dump is forwarded when ``every_steps`` steps and ``min_seconds`` seconds have passed since
    the last one; in between the latest value of each key is kept, so nothing is lost but
    intermediate points.
    """

    def __init__(self, sink: MetricSink, every_steps: int, min_seconds: float = 1.0) -> None:
        self.sink = sink
        self.every_steps = max(1, every_steps)
        self.min_seconds = min_seconds
        self._pending: dict[str, float] = {}
        self._last_sent: int | None = None
        self._last_time = 0.0
        self._step = 0

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        for key, value in key_values.items():
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and np.isfinite(value):
                self._pending[key] = float(value)
        self._step = step
        if self._last_sent is None or (
            step - self._last_sent >= self.every_steps and time.monotonic() - self._last_time >= self.min_seconds
        ):
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.sink.log_metrics(self._pending, step=self._step)
            self._pending = {}
            self._last_sent = self._step
            self._last_time = time.monotonic()

    def close(self) -> None:
        self.flush()


class FeedbackCallback(BaseCallback):
    """Records episodes, evaluates, keeps the best policy, checkpoints, and decides when to stop.

    Returning False from ``_on_step`` is SB3's way to end ``learn`` cleanly. On-policy algorithms
    checkpoint only at rollout boundaries (``_on_rollout_start``: the buffer is empty, the policy
    just updated), so a resumed run goes on exactly where the checkpoint was (see ``_resume``); a
    stop asked for mid-rollout waits for the next boundary, at most ``n_steps`` steps away.
    """

    def __init__(
        self,
        *,
        sink: MetricSink,
        progress: Progress,
        eval_env: Any,
        eval_freq: int,
        eval_episodes: int,
        target_reward: float | None,
        checkpoint_dir: Path,
        checkpoint_freq: int,
        off_policy: bool,
        should_stop: Callable[[], str | None],
        poll_steps: int = 512,
        counters: dict[str, int] | None = None,
    ) -> None:
        super().__init__(verbose=0)
        self.sink = sink
        self.progress = progress
        self.eval_env = eval_env
        self.eval_freq = eval_freq
        self.eval_episodes = eval_episodes
        self.target_reward = target_reward
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_freq = checkpoint_freq
        self.off_policy = off_policy
        self.should_stop = should_stop
        self.poll_steps = poll_steps
        self.best_state: dict[str, Any] | None = None
        self.differs_by: list[str] = []  # what the last checkpoint could not keep
        self._saved_counters = dict(counters or {})
        self._stop_pending: str | None = None
        self._stop_now = False

    def _init_callback(self) -> None:
        done = self.progress.timesteps
        saved = self._saved_counters
        self._next_eval = saved.get("next_eval", (done // self.eval_freq + 1) * self.eval_freq)
        self._next_checkpoint = saved.get("next_checkpoint", (done // self.checkpoint_freq + 1) * self.checkpoint_freq)
        self._next_poll = saved.get("next_poll", done + self.poll_steps)
        self._started_at = self.model.num_timesteps
        self._began = time.perf_counter()

    def counters(self) -> dict[str, int]:
        return {"next_eval": self._next_eval, "next_checkpoint": self._next_checkpoint, "next_poll": self._next_poll}

    def _on_rollout_start(self) -> None:
        if self.off_policy:
            return
        step = self.num_timesteps
        if self._stop_pending is not None:
            self.progress.stop_reason = f"stopped: {self._stop_pending}"
            self.checkpoint()
            self._stop_now = True
        elif step >= self._next_checkpoint and step > self._started_at:
            self._next_checkpoint = (step // self.checkpoint_freq + 1) * self.checkpoint_freq
            self.checkpoint()

    def _on_step(self) -> bool:
        if self._stop_now:
            return False
        step = self.num_timesteps
        for info in self.locals.get("infos", ()):
            episode = info.get("episode")
            if episode is not None:
                self.progress.episodes.append((step, float(episode["r"]), int(episode["l"])))
        if step >= self._next_eval:
            self._next_eval = (step // self.eval_freq + 1) * self.eval_freq
            if self.evaluate(step):
                if self.off_policy:
                    self.checkpoint()
                return False
        if self.off_policy and step >= self._next_checkpoint:
            self._next_checkpoint = (step // self.checkpoint_freq + 1) * self.checkpoint_freq
            self.checkpoint()
        if step >= self._next_poll and self._stop_pending is None:
            self._next_poll = step + self.poll_steps
            reason = self.should_stop()
            if reason and self.off_policy:
                self.progress.stop_reason = f"stopped: {reason}"
                self.checkpoint()
                return False
            self._stop_pending = reason or None
        return True

    def evaluate(self, step: int) -> bool:
        """Evaluate on the separate env; True when the target return is reached."""
        from stable_baselines3.common.evaluation import evaluate_policy

        returns, lengths = evaluate_policy(
            self.model, self.eval_env, n_eval_episodes=self.eval_episodes, deterministic=True, return_episode_rewards=True
        )
        mean, std = float(np.mean(returns)), float(np.std(returns))
        self.progress.evaluations.append((step, mean, std))
        if self.progress.best_mean_reward is None or mean > self.progress.best_mean_reward:
            self.progress.best_mean_reward, self.progress.best_timestep = mean, step
            self.best_state = {k: v.detach().clone() for k, v in self.model.policy.state_dict().items()}
            atomic_write(self.checkpoint_dir / BEST, lambda tmp: self.model.policy.save(str(tmp)))
        self.sink.log_metrics(
            {
                "eval/mean_reward": mean,
                "eval/std_reward": std,
                "eval/mean_ep_length": float(np.mean(lengths)),
                "eval/best_mean_reward": float(self.progress.best_mean_reward),
            },
            step=step,
        )
        from gravityml.paradigms.deep._progress import note

        note(
            f"evaluation at {step} steps  mean_reward {mean:.4g} ± {std:.3g}  best {self.progress.best_mean_reward:.4g}",
            began=getattr(self, "_began", time.perf_counter()),
        )
        if self.target_reward is not None and mean >= self.target_reward:
            self.progress.stop_reason = (
                f"target_reward reached: mean evaluation return {mean:.4g} >= {self.target_reward:g} at {step} steps"
            )
            return True
        return False

    def checkpoint(self) -> None:
        """Everything a resume needs, written whole (see ``_resume``)."""
        envs = None if self.off_policy else (self.training_env, self.eval_env)
        saved = save_checkpoint(
            self.checkpoint_dir, self.model, self.progress, self.counters(), off_policy=self.off_policy, envs=envs
        )
        self.differs_by = saved.differs_by


def write_tables(progress: Progress, folder: Path) -> list[Path]:
    """Every episode and every evaluation as CSV files (artefacts of the run)."""
    episodes, evaluations = folder / "episodes.csv", folder / "evaluations.csv"
    with episodes.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestep", "return", "length"])
        writer.writerows(progress.episodes)
    with evaluations.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestep", "mean_return", "std_return"])
        writer.writerows(progress.evaluations)
    return [episodes, evaluations]


def learning_curve_png(progress: Progress, path: Path, title: str, target: float | None) -> Path:
    """Episode returns (and their running mean) and evaluation returns against environment steps."""
    from gravityml.paradigms._plots import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    if progress.episodes:
        steps, returns, _ = (np.asarray(c, dtype="float64") for c in zip(*progress.episodes))
        ax.scatter(steps, returns, s=4, alpha=0.25, color="tab:blue", label="training episode")
        window = max(1, min(50, len(returns) // 10))
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color="tab:blue", label=f"running mean ({window} episodes)")
    if progress.evaluations:
        steps, means, stds = (np.asarray(c, dtype="float64") for c in zip(*progress.evaluations))
        ax.errorbar(steps, means, yerr=stds, color="tab:orange", marker="o", ms=3, capsize=2, label="evaluation")
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return save_figure(fig, path)
