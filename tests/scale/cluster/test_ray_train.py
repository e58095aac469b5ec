"""Ray Train on the session's two-node cluster (issue 13, point 1): `compute.workers: 2` on a Ray site.

One process here and two Ray Train workers there train the same network on scikit-learn's digits;
a worker killed mid-run is restarted from the last checkpoint and the run still registers once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

#: An MLP on the 8x8 digits: seconds per run, and it converges well within the epochs given.
SPEC = {
    "task": "supervised",
    "data": {"source": "sklearn:digits", "target": "target", "split": {"test": 0.2, "validation": 0.1, "seed": 7}},
    "model": {"type": "mlp", "params": {"hidden": [64]}},
    "train": {"epochs": 16, "batch_size": 32, "lr": 3.0e-3, "seed": 7},
    "compute": {"accelerator": "cpu", "precision": "fp32", "threads": 1},
    "placement": {"estimate": {"hours": 0.01, "hardware": "cpu", "devices": 1}},
}


def _spec(name: str, **compute: object) -> dict:
    return {**SPEC, "name": name, "compute": {**SPEC["compute"], **compute}}


def _train_here(tmp_path: Path, name: str) -> float:
    """The same spec in one process on this machine (no Ray): its test accuracy."""
    import yaml

    from gravityml.data import local_catalog
    from gravityml.execution import run_job
    from gravityml.tracking import Workspace

    path = tmp_path / f"{name}.yaml"
    spec = _spec(name)
    spec.pop("placement")
    path.write_text(yaml.safe_dump(spec))
    result = run_job(path, workspace=Workspace.current(tmp_path / "here"), catalog=local_catalog())
    return float(result.metrics["test/accuracy"])


def _registered_checkpoint(site_workspace: Path) -> bool:
    """Whether Ray Train's controller has registered a checkpoint of the run (its snapshot says so)."""
    import json

    for snapshot in site_workspace.rglob("ray-train/run/checkpoint_manager_snapshot.json"):
        try:
            state = json.loads(snapshot.read_text())
        except (OSError, ValueError):
            continue  # being written
        if state.get("latest_checkpoint_result"):
            return True
    return False


def _rank_one_pid() -> int | None:
    """The live Ray Train worker holding rank 1 (its scratch folder is /tmp/gravityml-raytrain-rank1-pid<PID>-*)."""
    import tempfile

    for folder in Path(tempfile.gettempdir()).glob("gravityml-raytrain-rank1-pid*-*"):
        pid = int(folder.name.split("-pid", 1)[1].split("-", 1)[0])
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # a worker killed earlier leaves its folder
        if b"RayTrainWorker" in title:
            return pid
    return None


def test_two_workers_survive_a_killed_worker_and_match_one_process(scale_env, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One Ray Train run (2 workers, max_failures 1) with one worker killed mid-run: it restarts from the
    last checkpoint, registers once, and ends within 1 point of the same spec in one process."""
    site_workspace = Path(scale_env.root) / "site-workspace"
    killed: list[int] = []
    done = threading.Event()

    def kill_one_worker_after_a_checkpoint() -> None:
        deadline = time.monotonic() + 300
        while not done.is_set() and time.monotonic() < deadline:
            # Kill only once Ray Train's controller has registered a checkpoint: it writes its snapshot
            # (<checkpoint dir>/ray-train/run/checkpoint_manager_snapshot.json) after registering one, and
            # a restart resumes from the latest checkpoint there. A checkpoint folder on disk alone is not
            # enough: the controller collects the reports when it polls, and a kill before that restarts
            # the group from scratch.
            if _registered_checkpoint(site_workspace):
                # Rank 1, not rank 0: Ray Train's controller collects rank 0's reports when it polls, and a
                # killed rank 0 takes a report not yet collected with it.
                pid = _rank_one_pid()
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_one_worker_after_a_checkpoint, daemon=True)
    watcher.start()
    name = "digits-ray-train"
    try:
        path = scale_env.job(name, _spec(name, workers=2, max_failures=1))
        code, out, err = cli("train", str(path), "--catalog", str(scale_env.catalog), "--site", scale_env.site)
    finally:
        done.set()
        watcher.join(5)
    assert killed, "no Ray Train worker was found to kill"
    assert code == 0, (out + err)[-4000:]
    registry = scale_env.registry()
    versions = registry.search_model_versions(f"name='{name}'")
    assert len(versions) == 1
    run = registry.get_run(versions[0].run_id)
    tags = run.data.tags
    assert "Ray Train TorchTrainer over 2 workers" in tags["gravityml.distributed"]
    assert any(key.endswith("executor") and value == "ray" for key, value in tags.items())
    # The restarted group resumed from a checkpoint (not from scratch), and the run has every epoch once.
    assert int(tags["gravityml.resumed_from_epoch"]) >= 1
    steps = [m.step for m in registry.get_metric_history(run.info.run_id, "train/loss")]
    assert sorted(steps) == list(range(SPEC["train"]["epochs"])) == list(range(int(tags["gravityml.epochs_run"])))
    distributed = run.data.metrics["test/accuracy"]
    alone = _train_here(tmp_path, "digits-one-process")
    assert distributed > 0.9
    assert abs(distributed - alone) <= 0.01 + 1e-9, (distributed, alone)


def test_a_budget_cap_stops_every_ray_train_worker_at_an_epoch_and_registers_nothing(scale_env, cli) -> None:  # type: ignore[no-untyped-def]
    """The site costs 1 $ an hour a node: a 0.004 $ cap is crossed within seconds of metering, long
    before 2,000 epochs; the driver relays the meter's reason to the workers, which stop together."""
    name = "digits-ray-train-capped"
    spec = _spec(name, workers=2)
    spec["train"] = {**SPEC["train"], "epochs": 2000}
    spec["placement"] = {**SPEC["placement"], "budget_usd": 0.004}
    path = scale_env.job(name, spec)
    code, out, err = cli("train", str(path), "--catalog", str(scale_env.catalog), "--site", scale_env.site)
    assert code == 2, (out + err)[-3000:]
    assert "stopped for budget after its last checkpoint" in err
    registry = scale_env.registry()
    assert not registry.search_model_versions(f"name='{name}'")
    (run,) = registry.search_runs([registry.get_experiment_by_name(name).experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["gravityml.stopped_for_budget"] == "true"
    assert "budget" in run.data.tags["gravityml.stop_reason"]
    epochs = len(registry.get_metric_history(run.info.run_id, "train/loss"))
    assert 1 <= epochs < 2000
