"""Resume after a crash: an off-policy run continues from its checkpoint with its replay buffer."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

ENVS = Path(__file__).with_name("rl_test_envs.py")


def test_dqn_resumes_after_a_crash_with_its_replay_buffer(cli, workspace, tmp_path: Path) -> None:
    shutil.copy(ENVS, tmp_path / "rl_test_envs.py")
    flag = tmp_path / "crash-once"
    flag.touch()
    spec = tmp_path / "crashy.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "crashy",
                "task": "reinforcement",
                "env": {"entry_point": "rl_test_envs:CrashingCartPole", "kwargs": {"flag": str(flag), "crash_after": 1200}},
                "model": {"type": "dqn", "params": {"learning_starts": 100, "buffer_size": 5000}},
                "train": {"timesteps": 1600, "eval_freq": 500, "eval_episodes": 2},
                "compute": {"accelerator": "cpu"},
            }
        )
    )
    code, _, err = cli("train", str(spec))
    assert code == 1 and "simulated crash" in err
    assert not flag.exists()
    runs = workspace.client.search_runs([workspace.experiment_id("crashy")])
    assert [r.info.status for r in runs] == ["FAILED"]

    code, out, err = cli("train", str(spec), "--resume")
    assert code == 0, err
    assert "crashy/1 registered" in out

    from gravityml.tracking import resolve

    version = resolve(workspace, "crashy")
    run = workspace.client.get_run(version.run_id)
    assert run.info.run_id == runs[0].info.run_id  # the same MLflow run goes on
    # The last checkpoint before the crash was at 1000 steps: the run went on from there, with the
    # transitions it had stored, and finished the remaining steps. SB3 calls callbacks before it
    # stores the step's transition, so a checkpoint at step 1000 holds 999.
    assert run.data.tags["gravityml.resumed_from_timesteps"] == "1000"
    assert run.data.metrics["train/replay_buffer_at_resume"] == 999
    assert run.data.metrics["train/timesteps"] == 1600
    steps = [m.step for m in workspace.client.get_metric_history(run.info.run_id, "eval/mean_reward")]
    assert steps == [500, 1000, 1500]  # the evaluation at 1000 is not repeated after the resume
