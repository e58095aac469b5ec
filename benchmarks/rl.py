"""Reinforcement-learning benchmark: gravityml's PPO against bare Stable-Baselines3, in one run.

1. Overhead. PPO on CartPole-v1 with the RL Zoo settings of examples/cartpole_ppo.yaml, the same
   number of steps, seed and torch threads (1) on both sides; runs alternate (bare, ours, bare, ...)
   so that load on the machine hits both alike. Environment steps per second are steps / seconds
   inside ``learn`` on both sides (gravityml's ``train/steps_per_s``, which includes its callback:
   metric forwarding to MLflow, episode records, checkpoints and evaluations). Two settings:
   - ``tracking``: no periodic evaluation; gravityml logs to MLflow and checkpoints 5 times;
   - ``evaluation``: 10 evaluations of 5 episodes; bare SB3 runs its own EvalCallback alike.
   The end-to-end wall time of ``gravityml.train`` (MLflow run, registry, final test episodes) is
   reported too.
2. Sample efficiency. Timesteps until the mean return of 10 evaluation episodes reaches 475 on
   CartPole-v1 (evaluated every 2,000 steps, budget 100,000), over several seeds, and the mean
   return of a 10-episode rollout of each registered policy.

Results: benchmarks/results/rl.json.

    .venv/bin/python benchmarks/rl.py [--steps 30000] [--repeats 3] [--seeds 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "rl.json"
SPEC = ROOT / "examples" / "cartpole_ppo.yaml"


def linear(start: float) -> Any:
    return lambda progress_remaining: progress_remaining * start


def bare_ppo(steps: int, seed: int, evaluation: dict[str, int] | None, folder: Path) -> tuple[float, float]:
    """Steps per wall second and per CPU second of SB3's PPO alone, with the example's settings."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.env_util import make_vec_env

    spec = yaml.safe_load(SPEC.read_text())
    params = dict(spec["model"]["params"])
    params["learning_rate"] = linear(float(params["learning_rate"][4:]))
    params["clip_range"] = linear(float(params["clip_range"][4:]))
    n_envs = spec["env"]["n_envs"]
    torch.set_num_threads(1)
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **params)
    callback = None
    if evaluation:
        eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=seed + 10_000)
        callback = EvalCallback(
            eval_env,
            eval_freq=evaluation["every"] // n_envs,
            n_eval_episodes=evaluation["episodes"],
            best_model_save_path=str(folder),  # as gravityml keeps its best policy
            verbose=0,
        )
    started, cpu_started = time.perf_counter(), time.process_time()
    model.learn(steps, callback=callback)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return model.num_timesteps / wall, model.num_timesteps / cpu


def ours_ppo(steps: int, seed: int, evaluation: dict[str, int] | None, home: Path) -> tuple[float, float, float]:
    """Steps per wall second and per CPU second inside learn, and per second end to end."""
    import gravityml

    spec = yaml.safe_load(SPEC.read_text())
    spec["train"] = {"timesteps": steps, "seed": seed, "eval_episodes": 5}
    if evaluation:
        spec["train"].update(eval_freq=evaluation["every"], eval_episodes=evaluation["episodes"])
    else:
        spec["train"].update(eval_freq=steps * 10, checkpoint_freq=steps // 5)
    spec["compute"] = {"accelerator": "cpu", "precision": "fp32", "threads": 1}
    os.environ["GRAVITYML_HOME"] = str(home)
    started = time.perf_counter()
    result = gravityml.train(spec)
    wall = time.perf_counter() - started
    metrics = result.metrics
    return metrics["train/steps_per_s"], metrics["train/timesteps"] / metrics["train/cpu_s"], steps / wall


def overhead(steps: int, repeats: int, home: Path) -> dict[str, Any]:
    settings = {"tracking": None, "evaluation": {"every": steps // 10, "episodes": 5}}
    out: dict[str, Any] = {}
    for name, evaluation in settings.items():
        bare, bare_cpu, ours, ours_cpu, e2e = [], [], [], [], []
        for i in range(repeats):
            sps, cps = bare_ppo(steps, seed=i, evaluation=evaluation, folder=home / f"bare-{name}-{i}")
            bare.append(sps)
            bare_cpu.append(cps)
            sps, cps, end_to_end = ours_ppo(steps, seed=i, evaluation=evaluation, home=home)
            ours.append(sps)
            ours_cpu.append(cps)
            e2e.append(end_to_end)
            print(f"  {name} #{i}: bare {bare[-1]:.0f} steps/s ({bare_cpu[-1]:.0f} per CPU s), gravityml "
                  f"{ours[-1]:.0f} steps/s ({ours_cpu[-1]:.0f} per CPU s; end to end {e2e[-1]:.0f})", flush=True)
        # Pairs run back to back share the machine's load: the median of the per-pair ratios is
        # steadier than the ratio of medians on a machine others use too.
        ratio = statistics.median(o / b for o, b in zip(ours, bare))
        cpu_ratio = statistics.median(o / b for o, b in zip(ours_cpu, bare_cpu))
        out[name] = {
            "bare_steps_per_s": bare,
            "gravityml_steps_per_s": ours,
            "bare_steps_per_cpu_s": bare_cpu,
            "gravityml_steps_per_cpu_s": ours_cpu,
            "gravityml_end_to_end_steps_per_s": e2e,
            "ratio_gravityml_over_bare": ratio,
            "overhead_pct": (1 - ratio) * 100,
            "cpu_ratio_gravityml_over_bare": cpu_ratio,
            "cpu_overhead_pct": (1 - cpu_ratio) * 100,
            "end_to_end_ratio": statistics.median(e / b for e, b in zip(e2e, bare)),
        }
        print(f"{name}: gravityml/bare = {ratio:.3f} (overhead {(1 - ratio) * 100:.1f}%), per CPU second "
              f"{cpu_ratio:.3f} (overhead {(1 - cpu_ratio) * 100:.1f}%)", flush=True)
    return out


def sample_efficiency(seeds: int, home: Path) -> dict[str, Any]:
    import gravityml
    from gravityml.inference import rollout

    spec = yaml.safe_load(SPEC.read_text())
    runs = []
    for seed in range(seeds):
        spec["name"] = f"cartpole-ppo-s{seed}"
        spec["train"].update(seed=seed, eval_freq=2000, timesteps=100_000, target_reward=475)
        spec["compute"] = {"accelerator": "cpu", "precision": "fp32"}
        os.environ["GRAVITYML_HOME"] = str(home)
        started = time.perf_counter()
        result = gravityml.train(spec)
        wall = time.perf_counter() - started
        reached = result.lineage.get("stop_reason", "").startswith("target_reward reached")
        check = rollout(result.model_ref, episodes=10, seed=1000 + seed)
        runs.append(
            {
                "seed": seed,
                "reached_475": reached,
                "timesteps": int(result.metrics["train/timesteps"]),
                "best_eval_mean_return": result.metrics.get("eval/best_mean_reward"),
                "rollout_mean_return": check.mean_return,
                "rollout_std_return": check.std_return,
                "wall_s": wall,
            }
        )
        print(f"  seed {seed}: {'reached' if reached else 'did not reach'} 475 at {runs[-1]['timesteps']} steps; "
              f"rollout {check.mean_return:.1f} ± {check.std_return:.1f} ({wall:.0f} s)", flush=True)
    steps = [r["timesteps"] for r in runs if r["reached_475"]]
    return {
        "runs": runs,
        "seeds_reaching_475": len(steps),
        "seeds": seeds,
        "median_timesteps_to_475": statistics.median(steps) if steps else None,
        "max_timesteps_to_475": max(steps) if steps else None,
        "min_rollout_mean_return": min(r["rollout_mean_return"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10,000 steps, 1 repeat, 2 seeds")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats, args.seeds = 10_000, 1, 2
    with tempfile.TemporaryDirectory(prefix="rl-bench-") as tmp:
        print(f"overhead: PPO CartPole-v1, {args.steps} steps, {args.repeats} repeats", flush=True)
        over = overhead(args.steps, args.repeats, Path(tmp) / "overhead")
        print(f"sample efficiency: {args.seeds} seeds, budget 100,000 steps", flush=True)
        eff = sample_efficiency(args.seeds, Path(tmp) / "efficiency")
    import stable_baselines3
    import torch

    report = {
        "benchmark": "rl",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__},
        "settings": {"spec": str(SPEC.relative_to(ROOT)), "steps": args.steps, "repeats": args.repeats, "threads": 1},
        "overhead": over,
        "sample_efficiency": eff,
        "acceptance": {
            "overhead_le_10pct": over["tracking"]["overhead_pct"] <= 10.0,
            "ppo_reaches_475_within_100k": eff["seeds_reaching_475"] == eff["seeds"],
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = RESULTS.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_path, RESULTS)
    print(json.dumps(report["acceptance"]))
    print(f"wrote {RESULTS}")
    return 0 if all(report["acceptance"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
