"""A training stopped by SIGTERM ends its MLflow run KILLED (a real `gravityml train` process)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from gravityml.tracking import Workspace


def _statuses(db: Path) -> list[str]:
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            return [row[0] for row in con.execute("SELECT status FROM runs")]
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return []


def _metric_count(db: Path) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        return int(con.execute("SELECT count(*) FROM metrics").fetchone()[0])
    finally:
        con.close()


def test_sigterm_ends_the_run_killed_and_keeps_the_checkpoint(workspace: Workspace, tmp_path: Path) -> None:
    spec = tmp_path / "long.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "long-ppo",
                "task": "reinforcement",
                "env": {"id": "CartPole-v1"},
                "model": {"type": "ppo", "params": {"n_steps": 128, "batch_size": 64}},
                "train": {"timesteps": 2_000_000, "eval_freq": 1024, "eval_episodes": 1},
                "compute": {"accelerator": "cpu"},
            }
        )
    )
    env = {**os.environ, "GRAVITYML_HOME": str(workspace.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gravityml", "train", str(spec)], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    db = workspace.root / "mlflow.db"
    deadline = time.monotonic() + 300
    # Wait until it is training: the run is RUNNING and has logged an evaluation.
    while time.monotonic() < deadline and not (_statuses(db) == ["RUNNING"] and _metric_count(db) > 0):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    out, err = proc.communicate()
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert _statuses(db) == ["KILLED"]
    assert list(workspace.checkpoints_dir.glob("long-ppo-*/run_id"))  # --resume can go on from here
