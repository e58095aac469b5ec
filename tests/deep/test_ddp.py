"""compute.devices: N > 1 trains data-parallel (DistributedDataParallel): gloo processes on CPU here,
one NCCL process per GPU where there are two or more."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from gravityml.compute import resolve_device
from gravityml.data import load_dataset
from gravityml.errors import ComputeError, TrainingError
from gravityml.paradigms import TrainContext, train
from gravityml.paradigms.deep import CHECKPOINT, fit_torch
from gravityml.spec import load_spec

EPOCHS = 12


def doc(accelerator: str = "cpu", devices: int = 2) -> dict[str, Any]:
    return {
        "name": "ddp",
        "task": "supervised",
        "data": {"source": "sklearn:breast_cancer", "target": "target", "split": {"test": 0.3, "seed": 2}},
        "model": {"type": "mlp", "params": {"hidden": [32], "dropout": 0.1}},
        "train": {"epochs": EPOCHS, "batch_size": 16, "lr": 0.003, "seed": 7},
        "compute": {"accelerator": accelerator, "devices": devices},
    }


class Recorder:
    """A metric sink that keeps what it was given (the run's MLflow sink in a real job)."""

    def __init__(self) -> None:
        self.metrics: list[tuple[int | None, dict[str, float]]] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_params(self, params: dict[str, Any]) -> None:
        pass


def ddp_train(work: Path, *, resume: bool = False) -> tuple[Any, Recorder]:
    spec = load_spec(doc())
    sink = Recorder()
    work.mkdir(exist_ok=True)
    ctx = TrainContext(spec=spec, workdir=work, dataset=load_dataset(spec), sink=sink, checkpoint_dir=work, resume=resume)
    return train(ctx), sink


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Recorder, Path]:
    """One uninterrupted 2-process run, shared by the tests below (each launch costs seconds)."""
    work = tmp_path_factory.mktemp("ddp") / "reference"
    return (*ddp_train(work), work)


def test_two_cpu_processes_train_record_devices_and_repeat(reference: tuple[Any, Recorder, Path], tmp_path: Path) -> None:
    first, sink, first_dir = reference
    second, _ = ddp_train(tmp_path / "again")

    assert first.metrics["test/accuracy"] >= 0.9, first.metrics
    # Same seed, same N: the same numbers, to the last bit (gloo sums two ranks in a fixed order).
    for key, value in first.model.network.state_dict().items():
        assert torch.equal(value, second.model.network.state_dict()[key]), key
    timeless = {k: v for k, v in first.metrics.items() if not k.startswith("time/")}
    assert timeless == {k: v for k, v in second.metrics.items() if not k.startswith("time/")}

    assert first.params["devices"] == 2  # logged by the job as resolved.devices
    assert first.tags["devices"] == "2"
    assert "DistributedDataParallel over 2 processes" in first.tags["distributed"]
    # Rank 0 alone reports: one value per epoch, not one per process.
    assert [step for step, _ in sink.metrics] == list(range(EPOCHS))
    assert sink.metrics[-1][1]["train/loss"] < sink.metrics[0][1]["train/loss"]
    ckpt = torch.load(first_dir / CHECKPOINT, weights_only=False)
    assert ckpt["epoch"] == EPOCHS - 1


def test_cpu_devices_are_capped_at_the_core_count() -> None:
    cores = os.cpu_count() or 1
    assert resolve_device("cpu", cores).count == cores
    with pytest.raises(ComputeError, match="CPU processes asked for") as err:
        resolve_device("cpu", cores + 1)
    assert err.value.allowed == f"1..{cores}"


def test_an_unpicklable_callback_is_refused_before_any_process_starts(tmp_path: Path) -> None:
    spec = load_spec(doc())
    ctx = TrainContext(spec=spec, workdir=tmp_path)
    x, y = torch.randn(8, 3).numpy(), torch.zeros(8, dtype=torch.long).numpy()
    with pytest.raises(TrainingError, match="picklable"):
        fit_torch(ctx, torch.nn.Linear(3, 2), x, y, checkpoint=False, extra_metrics=lambda net: {})


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs at least 2 CUDA GPUs (NCCL data-parallel)")
def test_two_gpus_train_with_nccl(tmp_path: Path) -> None:
    spec = load_spec(doc("cuda", 2))
    result = train(TrainContext(spec=spec, workdir=tmp_path, dataset=load_dataset(spec)))
    assert result.tags["devices"] == "2"
    assert result.metrics["test/accuracy"] >= 0.9, result.metrics


KILLED = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_ddp import ddp_train

if __name__ == "__main__":
    ddp_train(Path({work!r}))
"""


def test_killed_data_parallel_run_resumes_to_the_same_model(
    reference: tuple[Any, Recorder, Path], tmp_path: Path, kill_after_checkpoint: Any
) -> None:
    straight = reference[0]
    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    script = tmp_path / "killed.py"
    script.write_text(KILLED.format(tests=str(Path(__file__).parent), work=str(killed_dir)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_after_checkpoint(proc, (killed_dir / CHECKPOINT).exists, 120)
    # The orphaned workers notice at their next epoch end and leave without another checkpoint.
    time.sleep(1.0)
    killed_at = torch.load(killed_dir / CHECKPOINT, weights_only=False)["epoch"]
    assert killed_at < EPOCHS - 1, "the kill came after the last epoch"

    resumed, _ = ddp_train(killed_dir, resume=True)
    assert resumed.tags["resumed_from_epoch"] == str(killed_at + 1)
    for key, value in straight.model.network.state_dict().items():
        assert torch.equal(value, resumed.model.network.state_dict()[key]), key
    assert resumed.metrics["test/accuracy"] == straight.metrics["test/accuracy"]
