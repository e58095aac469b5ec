"""Off a terminal, training prints one progress line per epoch or evaluation, so long runs don't look hung."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from gravityml.paradigms.deep._progress import quiet_progress


def test_a_deep_run_prints_one_line_per_epoch_off_a_terminal(cli: Any, tmp_path: Path) -> None:
    doc = {
        "name": "progress-mlp",
        "task": "supervised",
        "data": {"source": "sklearn:iris", "target": "target", "split": {"test": 0.3, "validation": 0.2, "seed": 1}},
        "model": {"type": "mlp", "params": {"hidden": [8]}},
        "train": {"epochs": 3, "batch_size": 32},
        "compute": {"accelerator": "cpu", "threads": 1},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(doc))
    code, _, err = cli("train", str(tmp_path / "job.yaml"))
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("progress-mlp epoch ")]
    assert [re.match(r"progress-mlp epoch (\d)/3 ", line).group(1) for line in lines] == ["1", "2", "3"]  # type: ignore[union-attr]
    assert all(re.search(r"loss \d+\.\d{4}  val/loss \d+\.\d{4}  val/accuracy [01]\.\d{4}  [\d,]+ samples/s  \d+\.\d s$", x) for x in lines), lines


def test_trial_runs_print_nothing(capsys: Any) -> None:
    from gravityml.paradigms.deep._progress import EpochProgress, note

    with quiet_progress():
        bar = EpochProgress("trial", 2)
        bar.update(0, {"train/loss": 1.0})
        bar.close()
        note("evaluation at 10 steps", began=0.0)
    note("evaluation at 20 steps", began=0.0)
    err = capsys.readouterr().err
    assert "trial" not in err and "10 steps" not in err and "evaluation at 20 steps" in err


def test_an_rl_run_prints_one_line_per_evaluation(cli: Any, tmp_path: Path) -> None:
    doc = {
        "name": "progress-ppo",
        "task": "reinforcement",
        "env": {"id": "CartPole-v1", "n_envs": 1},
        "model": {"type": "ppo", "params": {"n_steps": 128, "batch_size": 64, "n_epochs": 1}},
        "train": {"timesteps": 384, "eval_freq": 128, "eval_episodes": 1, "seed": 3},
        "compute": {"accelerator": "cpu"},
    }
    (tmp_path / "rl.yaml").write_text(yaml.safe_dump(doc))
    code, _, err = cli("train", str(tmp_path / "rl.yaml"))
    assert code == 0, err
    steps = [int(m.group(1)) for m in re.finditer(r"^evaluation at (\d+) steps  mean_reward \S+ ± \S+  best \S+  [\d.]+ s$", err, re.M)]
    assert len(steps) >= 2 and steps == sorted(steps), err
