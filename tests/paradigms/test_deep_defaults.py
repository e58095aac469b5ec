"""A built-in network whose spec chooses no loop gets early stopping on validation rows, a cosine
rate and up to 100 epochs; a spec that sets epochs or patience keeps its own loop."""

from __future__ import annotations

from pathlib import Path

from gravityml.data import load_dataset
from gravityml.paradigms import TrainContext, train
from gravityml.spec import load_spec


def _fit(tmp_path: Path, **train_settings: object):
    spec = load_spec({"name": "d", "task": "supervised", "data": {"source": "sklearn:iris", "target": "target"},
                      "model": {"type": "mlp", "params": {"hidden": [8]}}, "train": {"lr": 0.05, **train_settings},
                      "compute": {"accelerator": "cpu", "threads": 1}})
    return train(TrainContext(spec=spec, workdir=tmp_path, dataset=load_dataset(spec)))


def test_no_loop_in_the_spec_means_early_stopping_and_a_cosine_rate(tmp_path: Path) -> None:
    result = _fit(tmp_path)
    assert result.tags["loop.defaults"].startswith("train.epochs and train.patience not set: up to 100 epochs")
    assert "lr_schedule cosine" in result.tags["loop.defaults"]
    assert int(result.tags["epochs_run"]) < 100 and result.tags["stopped"].startswith("early stopping")
    assert result.metrics["data/train_rows"] == 108  # 10% of the 120 training rows validate
    assert result.metrics["test/accuracy"] > 0.85


def test_a_spec_that_sets_epochs_keeps_its_loop(tmp_path: Path) -> None:
    result = _fit(tmp_path, epochs=3)
    assert "loop.defaults" not in result.tags
    assert result.tags["epochs_run"] == "3" and result.metrics["data/train_rows"] == 120
