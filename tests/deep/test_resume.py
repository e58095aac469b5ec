"""Kill -9 in the middle of training, resume, and end exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from gravityml.execution import run_job
from gravityml.paradigms.deep import CHECKPOINT
from gravityml.tracking import Workspace

EPOCHS = 6


def spec_file(tmp_path: Path) -> Path:
    doc = {
        "name": "resume-me",
        "task": "supervised",
        "data": {"source": "sklearn:digits", "target": "target", "split": {"test": 0.5, "validation": 0.1, "seed": 1}},
        "model": {"type": "mlp", "params": {"hidden": [32], "dropout": 0.2}},
        # Small batches make each epoch long enough to be killed in the middle of the run.
        "train": {"epochs": EPOCHS, "batch_size": 8, "lr": 0.003, "seed": 11, "lr_schedule": "cosine"},
        "compute": {"accelerator": "cpu", "threads": 1},
    }
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_killed_training_resumes_to_the_same_final_metrics(
    workspace: Workspace, tmp_path: Path, kill_after_checkpoint: Any
) -> None:
    spec = spec_file(tmp_path)
    killed_home = tmp_path / "killed"
    killed_home.mkdir()
    env = {**os.environ, "GRAVITYML_HOME": str(killed_home)}
    proc = subprocess.Popen([sys.executable, "-m", "gravityml", "train", str(spec)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints = killed_home / "checkpoints"
    kill_after_checkpoint(proc, lambda: bool(list(checkpoints.glob(f"*/{CHECKPOINT}"))), 240)
    assert proc.returncode == -signal.SIGKILL
    (ckpt,) = checkpoints.glob(f"*/{CHECKPOINT}")
    killed_at = torch.load(ckpt, weights_only=False)["epoch"]
    assert killed_at < EPOCHS - 1, "the kill came after the last epoch"
    killed_ws = Workspace.current(killed_home)
    assert not killed_ws.client.search_registered_models(), "a killed run registered a model"

    resumed = run_job(spec, workspace=killed_ws, resume=True)
    straight = run_job(spec, workspace=workspace)

    keys = [k for k in straight.metrics if k.startswith(("test/", "val/", "train/"))]
    assert "test/accuracy" in keys and "test/log_loss" in keys
    assert {k: resumed.metrics[k] for k in keys} == {k: straight.metrics[k] for k in keys}
    assert resumed.lineage["resumed_from_epoch"] == str(killed_at + 1)
    assert resumed.version == 1 and not list(checkpoints.glob(f"*/{CHECKPOINT}"))
    history = killed_ws.client.get_metric_history(resumed.run_id, "train/loss")
    assert sorted({m.step for m in history}) == list(range(EPOCHS)), "one run holds every epoch"
