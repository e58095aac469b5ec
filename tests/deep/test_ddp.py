"""compute.devices: N > 1 trains data-parallel (DistributedDataParallel): gloo processes on CPU here,
one NCCL process per GPU where there are two or more."""

from __future__ import annotations

import os
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

EPOCHS = 8


def doc(accelerator: str = "cpu", devices: int = 2) -> dict[str, Any]:
    return {
        "name": "ddp",
        "task": "supervised",
        "data": {"source": "sklearn:breast_cancer", "target": "target", "split": {"test": 0.3, "seed": 2}},
        "model": {"type": "mlp", "params": {"hidden": [32], "dropout": 0.1}},
        "train": {"epochs": EPOCHS, "batch_size": 32, "lr": 0.005, "seed": 7},
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


def ddp_train(tmp_path: Path, name: str) -> tuple[Any, Recorder]:
    spec = load_spec(doc())
    sink, work = Recorder(), tmp_path / name
    work.mkdir()
    ctx = TrainContext(spec=spec, workdir=work, dataset=load_dataset(spec), sink=sink, checkpoint_dir=work)
    return train(ctx), sink


def test_two_cpu_processes_train_record_devices_and_repeat(tmp_path: Path) -> None:
    first, sink = ddp_train(tmp_path, "a")
    second, _ = ddp_train(tmp_path, "b")

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
    ckpt = torch.load(tmp_path / "a" / CHECKPOINT, weights_only=False)
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
