"""Temperature scaling of torch networks (train.calibrate: temperature), fitted on validation rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gravityml.data import load_dataset
from gravityml.errors import TrainingError
from gravityml.models import load_model
from gravityml.models._nets import fit_temperature
from gravityml.paradigms import TrainContext, train
from gravityml.spec import load_spec


def _doc(**train_settings: object) -> dict:
    return {
        "name": "t",
        "task": "supervised",
        "data": {"source": "sklearn:digits", "target": "target", "split": {"test": 0.3, "validation": 0.2, "seed": 2}},
        "model": {"type": "mlp", "params": {"hidden": [64]}},
        # Many epochs at a high rate: a network that is right often and far too sure of itself.
        "train": {"epochs": 30, "batch_size": 32, "lr": 0.02, "seed": 1, **train_settings},
        "compute": {"accelerator": "cpu", "threads": 1},
    }


def _fit(tmp_path: Path, doc: dict):
    spec = load_spec(doc)
    return train(TrainContext(spec=spec, workdir=tmp_path, dataset=load_dataset(spec)))


def test_the_fitted_temperature_minimises_the_log_loss() -> None:
    gen = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 3, (400,), generator=gen)
    # Logits 4x too sharp: the right temperature is near 4.
    logits = 4.0 * (torch.nn.functional.one_hot(targets, 3).double() * 1.0 + torch.randn(400, 3, generator=gen, dtype=torch.float64))
    t = fit_temperature(logits, targets)

    def nll(temp: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / temp, targets))

    assert nll(t) < nll(t * 1.1) and nll(t) < nll(t / 1.1) and nll(t) < nll(1.0)
    assert 2.0 < t < 8.0


def test_temperature_scaling_lowers_the_ece_and_travels_with_the_model(tmp_path: Path) -> None:
    import onnxruntime as ort

    result = _fit(tmp_path, _doc(calibrate="temperature"))
    m = result.metrics
    assert m["model/temperature"] > 1.0  # it was overconfident
    assert m["test/ece"] < m["test/ece_uncalibrated"]
    assert result.model.meta["calibration"]["method"] == "temperature"
    assert "reliability.png" in {p.name for p in result.artifacts}
    rows = load_dataset(load_spec(_doc())).X.head(25)
    saved = load_model(result.model.save(tmp_path / "model"))
    pd.testing.assert_frame_equal(saved.predict_proba(rows), result.model.predict_proba(rows))
    # The temperature lives in the output layer, so the exported graph has it too.
    result.model.export_onnx(tmp_path / "m.onnx", rows)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    onnx_proba = session.run(None, {session.get_inputs()[0].name: rows.to_numpy(dtype="float32")})[0]
    np.testing.assert_allclose(onnx_proba, result.model.predict_proba(rows).to_numpy(), atol=1e-5)


def test_torch_networks_refuse_sigmoid_and_isotonic(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"train.calibrate: mlp cannot use isotonic calibration; allowed: \['temperature'\]"):
        _fit(tmp_path, _doc(calibrate="isotonic", epochs=1))


def test_calibration_outside_supervised_classifiers_is_refused(tmp_path: Path) -> None:
    spec = load_spec({"name": "u", "task": "unsupervised", "data": {"source": "sklearn:iris"}, "model": {"type": "kmeans"},
                      "train": {"calibrate": "sigmoid"}})
    with pytest.raises(TrainingError, match=r"calibration is offered for supervised classifiers only \(task: unsupervised\)"):
        train(TrainContext(spec=spec, workdir=tmp_path, dataset=load_dataset(spec)))
