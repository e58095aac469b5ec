"""End to end: train (tracked in MLflow), register, predict and roll out, with tiny budgets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

ENVS = Path(__file__).with_name("rl_test_envs.py")


def rl_spec(path: Path, **sections: object) -> Path:
    spec = {
        "name": "cartpole-dqn",
        "task": "reinforcement",
        "env": {"id": "CartPole-v1"},
        "model": {"type": "dqn", "params": {"learning_starts": 200, "buffer_size": 5000}},
        "train": {"timesteps": 1500, "eval_episodes": 2, "eval_freq": 500},
        "compute": {"accelerator": "cpu"},
        **sections,
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_dqn_on_cartpole_trains_registers_predicts_and_rolls_out(cli, workspace, tmp_path: Path) -> None:
    code, out, err = cli("train", str(rl_spec(tmp_path / "dqn.yaml")))
    assert code == 0, err
    assert "cartpole-dqn/1 registered" in out

    from gravityml.tracking import resolve

    version = resolve(workspace, "cartpole-dqn")
    client = workspace.client
    run = client.get_run(version.run_id)
    # The feedback loop reached MLflow: several evaluations, SB3's losses and fps, a learning curve.
    assert len(client.get_metric_history(run.info.run_id, "eval/mean_reward")) == 3
    assert {"train/loss", "time/fps", "rollout/ep_rew_mean", "test/mean_reward"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/learning_curve.png" in artifacts
    assert run.data.tags["gravityml.stop_reason"].startswith("timesteps done")

    # gravityml.load(...).predict works with arrays and frames of observations.
    import gravityml

    policy = gravityml.load("cartpole-dqn")
    obs = np.array([[0.0, 0.0, 0.05, 0.0], [0.0, 0.0, -0.05, 0.0]])
    actions = policy.predict(obs)
    assert list(actions.columns) == ["prediction", "confidence"]
    assert set(actions["prediction"]) <= {0, 1}
    proba = policy.predict_proba(obs)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(actions["confidence"], proba.max(axis=1), rtol=1e-6)

    # Batch predict from JSONL: rows may carry the whole observation as {"obs": [...]}.
    rows = tmp_path / "observations.jsonl"
    rows.write_text("".join(json.dumps({"obs": list(o)}) + "\n" for o in obs))
    code, out, err = cli("predict", "cartpole-dqn", str(rows), "-o", str(tmp_path / "actions.jsonl"))
    assert code == 0, err
    scored = [json.loads(line) for line in (tmp_path / "actions.jsonl").read_text().splitlines()]
    assert [r["prediction"] for r in scored] == actions["prediction"].tolist()

    code, out, err = cli("rollout", "cartpole-dqn", "--episodes", "3", "--seed", "5")
    assert code == 0, err
    assert "mean return" in out and "over 3 episodes" in out
    from gravityml.inference import rollout

    again = rollout("cartpole-dqn", episodes=3, seed=5)
    assert f"mean return {again.mean_return:.2f}" in out  # the same seeds give the same returns


def test_sac_on_pendulum_trains_and_rolls_out_to_a_gif(cli, workspace, tmp_path: Path) -> None:
    spec = rl_spec(
        tmp_path / "sac.yaml",
        name="pendulum-sac",
        env={"id": "Pendulum-v1"},
        model={"type": "sac", "params": {"learning_starts": 100, "buffer_size": 2000, "batch_size": 64}},
        train={"timesteps": 600, "eval_episodes": 1, "eval_freq": 600},
    )
    code, out, err = cli("train", str(spec))
    assert code == 0, err
    import gravityml

    policy = gravityml.load("pendulum-sac")
    assert policy.action_space["type"] == "Box"
    actions = policy.predict(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]]))
    assert list(actions.columns) == ["prediction", "action_0"]
    torques = np.array(actions["prediction"].tolist())
    assert torques.shape == (2, 1) and (np.abs(torques) <= 2.0).all()
    np.testing.assert_array_equal(actions["action_0"], torques[:, 0])
    with pytest.raises(Exception, match="no action probabilities"):
        policy.predict_proba(np.zeros(3))

    gif = tmp_path / "pendulum.gif"
    code, out, err = cli("rollout", "pendulum-sac", "--episodes", "1", "--gif", str(gif), "--max-steps", "20")
    assert code == 0, err
    from PIL import Image

    with Image.open(gif) as image:
        assert image.n_frames == 21  # the reset frame and one per step
