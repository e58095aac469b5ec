"""PPO killed at two points and resumed ends with what the uninterrupted run ends with (real kills)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from gravityml.tracking import Workspace, resolve

SPEC = {
    "name": "ppo-exact",
    "task": "reinforcement",
    "env": {"id": "CartPole-v1", "n_envs": 2},
    "model": {"type": "ppo", "params": {"n_steps": 64, "batch_size": 32, "learning_rate": "lin_0.001"}},
    "train": {"timesteps": 3072, "eval_freq": 500, "eval_episodes": 2, "checkpoint_freq": 300},
    "compute": {"accelerator": "cpu"},
}


def _checkpointed_steps(workspace: Workspace) -> int:
    """The timesteps of the newest complete checkpoint of the job (0 when there is none)."""
    for latest in workspace.checkpoints_dir.glob("ppo-exact-*/LATEST"):
        try:
            return int(latest.read_text().strip().removeprefix("step-"))
        except (OSError, ValueError):
            continue
    return 0


def _train_until_killed(workspace: Workspace, spec: Path, at_steps: int, *resume: str) -> int:
    """`gravityml train` SIGKILLed as soon as a checkpoint at or past ``at_steps`` is complete."""
    env = {**os.environ, "GRAVITYML_HOME": str(workspace.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gravityml", "train", str(spec), *resume], env=env, cwd=spec.parent,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 300
    try:
        while (steps := _checkpointed_steps(workspace)) < at_steps:
            assert proc.poll() is None, f"the run ended before {at_steps} steps: {proc.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL
    return steps


def _history(workspace: Workspace, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in workspace.client.get_metric_history(run_id, key))


def _artefact(workspace: Workspace, run_id: str, path: str, tmp: Path) -> str:
    return Path(workspace.client.download_artifacts(run_id, path, str(tmp))).read_text()


def test_ppo_killed_twice_and_resumed_ends_like_the_uninterrupted_run(cli, workspace: Workspace, tmp_path: Path) -> None:
    spec = tmp_path / "ppo.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    code, out, err = cli("train", str(spec))  # uninterrupted: version 1
    assert code == 0, err

    first = _train_until_killed(workspace, spec, 1000)
    second = _train_until_killed(workspace, spec, 2000, "--resume")
    assert 1000 <= first < second < 3072
    code, out, err = cli("train", str(spec), "--resume")
    assert code == 0, err
    assert "ppo-exact/2 registered" in out

    whole, resumed = resolve(workspace, "ppo-exact/1"), resolve(workspace, "ppo-exact/2")
    a, b = workspace.client.get_run(whole.run_id), workspace.client.get_run(resumed.run_id)
    assert b.data.tags["gravityml.resumed_from_timesteps"] == str(second)
    assert b.data.tags["gravityml.resume_exact"] == "true"
    for key in ("test/mean_reward", "test/std_reward", "eval/best_mean_reward", "train/episodes", "train/timesteps"):
        assert b.data.metrics[key] == a.data.metrics[key], key
    assert _history(workspace, b.info.run_id, "eval/mean_reward") == _history(workspace, a.info.run_id, "eval/mean_reward")
    # Every training episode, in order, with the same return and length; the same evaluations.
    for table in ("reports/episodes.csv", "reports/evaluations.csv"):
        assert _artefact(workspace, b.info.run_id, table, tmp_path / "b") == _artefact(
            workspace, a.info.run_id, table, tmp_path / "a"
        ), table

    # The registered policies are the same network: the same action probabilities everywhere.
    import gravityml

    obs = np.random.default_rng(0).normal(size=(64, 4)) * [1.0, 1.0, 0.1, 1.0]
    np.testing.assert_array_equal(
        gravityml.load("ppo-exact/2").predict_proba(obs), gravityml.load("ppo-exact/1").predict_proba(obs)
    )
