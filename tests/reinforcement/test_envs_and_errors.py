"""Custom environments from an entry point, and every way a reinforcement spec can be refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from gravityml.errors import ComputeError, EnvironmentError_, SpecError

ROOT = Path(__file__).resolve().parents[2]
ENVS = Path(__file__).with_name("rl_test_envs.py")


def write(path: Path, **spec: object) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_gridworld_example_trains_from_its_entry_point(cli, workspace, tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples" / "envs", examples / "envs")
    spec = yaml.safe_load((ROOT / "examples" / "gridworld.yaml").read_text())
    spec["train"].update(timesteps=3000, eval_freq=1000)
    code, out, err = cli("train", str(write(examples / "gridworld.yaml", **spec)))
    assert code == 0, err

    import gravityml

    policy = gravityml.load("gridworld")
    assert policy.env["entry_point"] == "envs.gridworld:GridWorld"
    assert policy.schema.feature_names == ["obs_0", "obs_1"]
    # The entry point is found again from the folder recorded at training (the spec's folder).
    code, out, err = cli("rollout", "gridworld", "--episodes", "2", "--gif", str(tmp_path / "grid.gif"))
    assert code == 0, err
    assert (tmp_path / "grid.gif").stat().st_size > 0


@pytest.mark.parametrize(
    ("entry_point", "reason"),
    [
        ("rl_test_envs:OldApiEnv", "reset"),
        ("rl_test_envs:OutOfSpaceEnv", "observation"),
    ],
)
def test_an_env_that_breaks_the_api_is_refused_with_the_checkers_reason(
    cli, tmp_path: Path, entry_point: str, reason: str
) -> None:
    shutil.copy(ENVS, tmp_path / "rl_test_envs.py")
    spec = write(
        tmp_path / "broken.yaml",
        name="broken",
        task="reinforcement",
        env={"entry_point": entry_point},
        model={"type": "ppo"},
        train={"timesteps": 100},
    )
    code, out, err = cli("train", str(spec))
    assert code == 2
    assert "breaks the Gymnasium API" in err and reason in err.lower()
    assert err.count("\n") == 1  # one line, no traceback


def _train(spec: dict, tmp_path: Path):
    from gravityml.paradigms import TrainContext, train
    from gravityml.spec import load_spec

    return train(TrainContext(spec=load_spec(spec), workdir=tmp_path))


BASE = {"name": "x", "task": "reinforcement", "env": {"id": "CartPole-v1"}, "train": {"timesteps": 64}}


def test_dqn_on_a_continuous_action_space_is_a_clear_error(tmp_path: Path) -> None:
    spec = {**BASE, "env": {"id": "Pendulum-v1"}, "model": {"type": "dqn"}}
    with pytest.raises(SpecError, match=r"model.type: dqn cannot act in a Box action space.*'a2c', 'ppo', 'sac', 'td3'"):
        _train(spec, tmp_path)


def test_misspelt_hyperparameters_are_refused_with_a_suggestion(tmp_path: Path) -> None:
    spec = {**BASE, "model": {"type": "ppo", "params": {"n_step": 32}}}
    with pytest.raises(SpecError, match=r"model.params.n_step: 'n_step' is not a parameter of ppo \(PPO\) \(did you mean 'n_steps'\?\)"):
        _train(spec, tmp_path)
    spec = {**BASE, "model": {"type": "ppo", "params": {"device": "cuda"}}}
    with pytest.raises(SpecError, match="the platform sets it from env, train.seed and compute"):
        _train(spec, tmp_path)


def test_bad_hyperparameter_values_and_unknown_envs_are_typed_errors(tmp_path: Path) -> None:
    from gravityml.errors import TrainingError

    with pytest.raises(TrainingError, match="ppo refused its hyperparameters"):
        _train({**BASE, "model": {"type": "ppo", "params": {"n_steps": 1, "batch_size": 64}}}, tmp_path)
    with pytest.raises(EnvironmentError_, match="'CartPol-v1' cannot be made"):
        _train({**BASE, "env": {"id": "CartPol-v1"}, "model": {"type": "ppo"}}, tmp_path)
    with pytest.raises(EnvironmentError_, match="module 'no_such_pkg.envs' cannot be imported"):
        _train({**BASE, "env": {"entry_point": "no_such_pkg.envs:Env"}, "model": {"type": "ppo"}}, tmp_path)
    with pytest.raises(SpecError, match="train.timesteps: a reinforcement job needs"):
        _train({**BASE, "train": {}, "model": {"type": "ppo"}}, tmp_path)


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp64"])
def test_precisions_sb3_cannot_train_in_are_refused(tmp_path: Path, precision: str) -> None:
    spec = {**BASE, "model": {"type": "ppo"}, "compute": {"accelerator": "cpu", "precision": precision}}
    with pytest.raises(ComputeError, match=f"compute.precision: {precision} is not available.*float32"):
        _train(spec, tmp_path)


def test_policy_input_forms_and_the_feedback_loop_without_tracking(tmp_path: Path) -> None:
    """A direct trainer call: the target reward stops training early; the policy reads any row form."""
    spec = {
        **BASE,
        "model": {"type": "ppo", "params": {"n_steps": 64, "batch_size": 64}},
        "train": {"timesteps": 4096, "eval_freq": 256, "eval_episodes": 1, "target_reward": 9.0},
        "compute": {"accelerator": "cpu", "precision": "auto"},
    }
    result = _train(spec, tmp_path)
    # Any CartPole policy lasts at least 9 steps, so the first evaluation reaches the target.
    assert result.tags["stop_reason"].startswith("target_reward reached")
    assert result.metrics["train/timesteps"] < 4096
    assert result.tags["precision_used"] == "fp32" and "float32" in result.tags["precision_reason"]
    assert any(p.name == "learning_curve.png" and p.stat().st_size > 0 for p in result.artifacts)

    import pandas as pd

    policy = result.model
    obs = np.array([[0.1, 0.2, -0.05, 0.3]])
    expected = policy.predict(obs)
    assert policy.predict(obs[0]).equals(expected)
    assert policy.predict(pd.DataFrame({"obs": [list(obs[0])]})).equals(expected)
    assert policy.predict(pd.DataFrame(obs, columns=[f"obs_{i}" for i in range(4)])).equals(expected)
    with pytest.raises(Exception, match="'obs' holds 3 numbers; the policy takes observations of 4"):
        policy.predict(pd.DataFrame({"obs": [[1.0, 2.0, 3.0]]}))

    saved = policy.save(tmp_path / "policy")
    from gravityml.models import load_model

    np.testing.assert_allclose(load_model(saved).predict_proba(obs), policy.predict_proba(obs), rtol=1e-6)


def test_should_stop_ends_training_cleanly_after_a_checkpoint(tmp_path: Path) -> None:
    import json

    from gravityml.paradigms import TrainContext, train
    from gravityml.spec import load_spec

    spec = {
        **BASE,
        "model": {"type": "ppo", "params": {"n_steps": 64, "batch_size": 64}},
        "train": {"timesteps": 20_000, "eval_freq": 10_000, "eval_episodes": 1},
        "compute": {"accelerator": "cpu"},
    }
    checkpoints = tmp_path / "checkpoints"
    calls: list[int] = []

    def budget() -> str | None:
        calls.append(1)
        return "budget cap reached (2.00 of 2.00 USD)" if len(calls) >= 2 else None

    result = train(
        TrainContext(spec=load_spec(spec), workdir=tmp_path, checkpoint_dir=checkpoints, should_stop=budget)
    )
    assert result.tags["stop_reason"] == "stopped: budget cap reached (2.00 of 2.00 USD)"
    assert result.metrics["train/timesteps"] < 20_000
    # The checkpoint is the rollout boundary where it stopped (the step after it was taken).
    latest = checkpoints / (checkpoints / "LATEST").read_text().strip()
    state = json.loads((latest / "state.json").read_text())
    assert state["timesteps"] == result.metrics["train/timesteps"] - 1
    assert (latest / "model.zip").exists()
