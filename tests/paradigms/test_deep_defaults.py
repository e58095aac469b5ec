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


def test_epochs_20_written_in_the_spec_is_the_authors_choice_also_once_placed(tmp_path: Path) -> None:
    """20 is TrainSpec's default; written out, it is a choice (20 epochs, no early stopping), and it stays
    one through the placed job's document; left out, the loop defaults apply after placement too."""
    from gravityml.execution import place

    doc = {"name": "d", "task": "supervised", "data": {"source": "sklearn:iris", "target": "target"},
           "model": {"type": "mlp", "params": {"hidden": [8]}}, "train": {"lr": 0.05, "epochs": 20},
           "compute": {"accelerator": "cpu", "threads": 1}}
    chosen = place(load_spec(doc)).job().load_spec()
    assert "epochs" in chosen.train.model_fields_set
    result = train(TrainContext(spec=chosen, workdir=tmp_path, dataset=load_dataset(chosen)))
    assert "loop.defaults" not in result.tags and result.tags["epochs_run"] == "20"
    unset = place(load_spec({**doc, "train": {"lr": 0.05}})).job().load_spec()
    assert not {"epochs", "patience"} & unset.train.model_fields_set
    assert unset.document()["train"] == {"lr": 0.05}
