"""Torch-backed models: training loop behaviour, precision, images, text, export, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from gravityml.compute import available_accelerators, precision_policy, resolve_device, supported_precisions
from gravityml.data import load_dataset
from gravityml.errors import ComputeError, DataError, SpecError, TrainingError
from gravityml.models import load_model
from gravityml.paradigms import TrainContext, train
from gravityml.paradigms.deep import CHECKPOINT, class_weights, fit_torch, seed_everything
from gravityml.spec import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def job(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "deep",
        "task": "supervised",
        "data": {"source": "sklearn:iris", "target": "target", "split": {"test": 0.3, "seed": 3}},
        "model": {"type": "mlp", "params": {"hidden": [16]}},
        "train": {"epochs": 4, "batch_size": 16, "lr": 0.01, "seed": 5},
        "compute": {"accelerator": "cpu", "threads": 1},
    }
    for key, value in overrides.items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) and isinstance(doc.get(key), dict) else value
    return doc


def fit(tmp_path: Path, doc: dict[str, Any], **ctx: Any) -> Any:
    spec = load_spec(doc)
    return train(TrainContext(spec=spec, workdir=tmp_path, dataset=load_dataset(spec), **ctx))


def test_same_seed_same_model_and_a_saved_model_predicts_the_same(tmp_path: Path) -> None:
    first = fit(tmp_path, job())
    second = fit(tmp_path, job())
    assert first.metrics["test/log_loss"] == second.metrics["test/log_loss"]
    other_seed = fit(tmp_path, job(train={"seed": 6}))
    assert other_seed.metrics["test/log_loss"] != first.metrics["test/log_loss"]

    rows = load_dataset(load_spec(job())).X.head(9)
    loaded = load_model(first.model.save(tmp_path / "m"))
    pd.testing.assert_frame_equal(first.model.predict(rows), loaded.predict(rows))
    proba = loaded.predict_proba(rows)
    assert list(proba.columns) == ["setosa", "versicolor", "virginica"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    out = loaded.predict(rows)
    assert (out["confidence"] == proba.max(axis=1)).all()
    assert first.tags["stopped"] == "completed all epochs" and first.tags["epochs_run"] == "4"


def test_regression_predicts_values_with_an_interval(tmp_path: Path) -> None:
    doc = job(data={"source": "sklearn:diabetes"}, train={"epochs": 30, "batch_size": 32})
    result = fit(tmp_path, doc)
    assert result.metrics["test/r2"] > 0.3  # a linear model gets ~0.45 here; a broken target scale gets < 0
    out = result.model.predict(load_dataset(load_spec(doc)).X.head(5))
    assert {"prediction", "lower", "upper"} <= set(out.columns)
    assert (out["lower"] < out["prediction"]).all() and (out["prediction"] < out["upper"]).all()


def test_early_stopping_lr_schedule_and_clipping_are_applied(tmp_path: Path) -> None:
    doc = job(train={"epochs": 200, "lr": 0.05, "patience": 2, "lr_schedule": "step", "grad_clip": 0.5})
    result = fit(tmp_path, doc)
    assert result.tags["stopped"].startswith("early stopping")
    assert int(result.tags["epochs_run"]) < 200
    history = __import__("json").loads((tmp_path / "history.json").read_text())
    lrs = [h["train/lr"] for h in history]
    assert lrs[0] == pytest.approx(0.05)
    assert int(result.tags["best_epoch"]) == int(result.tags["epochs_run"]) - 3  # best, then patience epochs
    assert "val/loss" in history[0]


def test_balanced_class_weights() -> None:
    weights = class_weights(np.array([0, 0, 0, 1]), 2)
    np.testing.assert_allclose(weights, [4 / 6, 4 / 2])


def test_should_stop_checkpoints_and_records_the_reason(tmp_path: Path) -> None:
    polls = iter([None, None, "budget cap of $1 reached"])
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    result = fit(tmp_path, job(train={"epochs": 20}), checkpoint_dir=ckpt, should_stop=lambda: next(polls, "again"))
    assert result.tags["stopped"] == "stopped by request: budget cap of $1 reached"
    assert result.tags["epochs_run"] == "3"
    state = torch.load(ckpt / CHECKPOINT, weights_only=False)
    assert state["epoch"] == 2 and set(state) >= {"network", "optimizer", "scaler", "rng", "scheduler"}


def test_fit_torch_is_reusable_for_an_autoencoder(tmp_path: Path) -> None:
    spec = load_spec(job(train={"epochs": 15, "lr": 0.01}))
    X = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")
    seed_everything(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.Linear(3, 6))
    result = fit_torch(TrainContext(spec=spec, workdir=tmp_path), net, X, X, X_val=X[:50], y_val=X[:50], loss="mse")
    losses = [h["train/loss"] for h in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert "val/accuracy" not in result.history[-1]


@pytest.mark.parametrize("precision", ["fp64", "bf16"])
def test_precisions_train_and_predict(tmp_path: Path, precision: str) -> None:
    result = fit(tmp_path, job(compute={"precision": precision}, train={"epochs": 8}))
    expected = torch.float64 if precision == "fp64" else torch.float32
    assert next(result.model.network.parameters()).dtype == expected
    assert result.model.meta["precision"] == precision
    assert result.metrics["test/accuracy"] > 0.6


def test_precision_the_hardware_lacks_is_an_error_naming_what_it_offers() -> None:
    cpu = resolve_device("cpu")
    offered = supported_precisions(cpu)
    assert offered[:2] == ["fp64", "fp32"] and "bf16" in offered
    if "fp16" not in offered:
        with pytest.raises(ComputeError, match=r"'fp16' is not offered by cpu.*allowed: \['fp64', 'fp32', 'bf16'\]"):
            precision_policy("fp16", cpu)
    assert precision_policy("bf16", cpu).autocast_dtype == "bfloat16"


@pytest.mark.gpu
@pytest.mark.skipif("cuda" not in available_accelerators(), reason="needs a CUDA device")
def test_fp16_on_cuda_uses_a_gradient_scaler() -> None:
    assert precision_policy("fp16", resolve_device("cuda")).needs_scaler


@pytest.mark.skipif("cuda" in available_accelerators(), reason="this machine has CUDA")
def test_asking_for_an_absent_gpu_says_what_was_found(tmp_path: Path) -> None:
    with pytest.raises(ComputeError, match=r"'cuda' is not available.*allowed: \['auto', 'cpu'"):
        fit(tmp_path, job(compute={"accelerator": "cuda"}))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_the_same_spec_trains_on_cuda(tmp_path: Path, precision: str) -> None:
    if precision not in supported_precisions(resolve_device("cuda")):
        pytest.skip(f"{precision} is not offered by this GPU")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    result = fit(tmp_path, job(compute={"accelerator": "auto", "precision": precision}, train={"epochs": 6}), checkpoint_dir=ckpt)
    assert result.metrics["test/accuracy"] > 0.6
    assert next(result.model.network.parameters()).device.type == "cpu"  # saved models name no device
    assert torch.load(ckpt / CHECKPOINT, weights_only=False, map_location="cpu")["precision"] == precision


def test_wrong_inputs_for_a_network_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"cnn needs image rows"):
        fit(tmp_path, job(model={"type": "cnn", "params": {}}))
    with pytest.raises(SpecError, match=r"'hiden' is not a parameter of the mlp network \(did you mean 'hidden'\?\)"):
        fit(tmp_path, job(model={"type": "mlp", "params": {"hiden": [8]}}))
    spam = {"source": str(EXAMPLES / "data/spam.csv"), "target": "label", "text": "text"}
    with pytest.raises(TrainingError, match=r"mlp does not read free text"):
        fit(tmp_path, job(data=spam))


def test_text_model_builds_a_vocabulary_and_scores_new_messages(tmp_path: Path) -> None:
    doc = job(
        data={"source": str(EXAMPLES / "data/spam.csv"), "target": "label", "text": "text"},
        model={"type": "text", "params": {"dim": 16, "hidden": 16}},
        train={"epochs": 6, "batch_size": 64},
    )
    result = fit(tmp_path, doc)
    assert result.metrics["test/accuracy"] > 0.8  # the majority class alone is ~0.7
    model = load_model(result.model.save(tmp_path / "m"))
    assert "prize" in model.encoder.vocabulary and model.encoder.vocabulary[:2] == ["<pad>", "<unk>"]
    new = pd.DataFrame({"text": ["Claim your FREE prize now, click the link", "See you at lunch with mum later", "zzqx"]})
    out = model.predict(new)
    assert list(out["prediction"][:2]) == ["spam", "ham"]
    assert out["confidence"].between(0.5, 1.0).all()


def test_image_folder_trains_a_binary_cnn_and_predicts_a_folder_of_files(cli: Any, tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load((EXAMPLES / "digit_is_seven.yaml").read_text())
    doc["data"]["source"] = str(EXAMPLES / "data/digit_is_seven")
    doc["train"].update(epochs=3)
    doc["compute"]["threads"] = 2
    spec_path = tmp_path / "seven.yaml"
    spec_path.write_text(yaml.safe_dump(doc))
    code, out, err = cli("train", str(spec_path))
    assert code == 0, err
    code, out, err = cli("predict", "digit-is-seven", str(EXAMPLES / "data/new_digits"), "-o", str(tmp_path / "p.csv"))
    assert code == 0, err
    scored = pd.read_csv(tmp_path / "p.csv")
    assert list(scored.columns) == ["file", "prediction", "confidence"] and len(scored) == 20
    truth = np.where(scored["file"].str.contains("digit7"), "seven", "other")
    assert (scored["prediction"] == truth).mean() >= 0.8
    assert scored["confidence"].between(0.5, 1.0).all()

    empty = tmp_path / "no_images"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    code, out, err = cli("predict", "digit-is-seven", str(empty), "-o", str(tmp_path / "q.csv"))
    assert code == 2 and "holds no images" in err


def test_a_folder_for_a_model_not_trained_on_images_is_refused(cli: Any, tmp_path: Path) -> None:
    import yaml

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(job(train={"epochs": 1})))
    assert cli("train", str(tmp_path / "s.yaml"))[0] == 0
    code, _, err = cli("predict", "deep", str(EXAMPLES / "data/new_digits"), "-o", str(tmp_path / "o.csv"))
    assert code == 2 and "was not trained on images" in err
    assert not (tmp_path / "o.csv").exists()


def test_onnx_export_keeps_normalisation_in_the_graph(tmp_path: Path) -> None:
    import onnxruntime as ort

    doc = job(train={"epochs": 3})
    result = fit(tmp_path, doc)
    rows = result.model.prepare(load_dataset(load_spec(doc)).X.head(20))
    meta = result.model.export_onnx(tmp_path / "m.onnx", rows)
    assert meta["inputs"][0]["shape"] == ["batch", 4] and meta["outputs"][0]["name"] == "probabilities"
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    raw = rows.to_numpy(dtype="float32")  # plain numbers, no scaling by the caller
    onnx_proba = session.run(None, {"input": raw})[0]
    np.testing.assert_allclose(onnx_proba, result.model.predict_proba(rows).to_numpy(), atol=1e-5)
    raw = raw.copy()
    raw[0, 1] = np.nan  # imputed inside the graph too (native predict refuses it: iris has no gaps)
    assert np.isfinite(session.run(None, {"input": raw})[0]).all()
    with pytest.raises(DataError):
        result.model.predict(rows.iloc[:0])
