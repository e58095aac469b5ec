"""The built-in ``text`` network on TensorFlow (``model: {type: text, framework: tensorflow}``):
trained by ``gravityml train`` from a YAML spec on the shipped spam messages
(examples/data/spam.csv, written by examples/make_spam.py, nothing downloaded) with the platform's
own tokenizer and vocabulary, at bf16 with per-epoch checkpoints; predicted with confidence by
``gravityml predict`` from the registry; saved and loaded; exported to ONNX and TFLite (float and
int8) with parity. ``examples/keras_text.yaml`` is validated and trained by the CLI from the repo
root. Shares the tensorflow worker with tests/keras/test_keras.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from gravityml.errors import SpecError
from gravityml.spec import load_spec

pytestmark = pytest.mark.xdist_group("tensorflow")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NEW = ["Claim your FREE prize now, click the link", "See you at lunch with mum later", "zzqx"]


def _spec(folder: Path, **model: Any) -> Path:
    doc = {
        "name": "spam-keras",
        "task": "supervised",
        "data": {"source": str(EXAMPLES / "data" / "spam.csv"), "target": "label", "text": "text",
                 "split": {"test": 0.2, "seed": 7}},
        "model": {"type": "text", "framework": "tensorflow", "params": {"dim": 16, "hidden": 16}, **model},
        "train": {"epochs": 6, "batch_size": 64, "lr": 5.0e-3, "seed": 7},
        "compute": {"accelerator": "cpu", "precision": "bf16"},
    }
    path = folder / "spam_keras.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The spam text network trained once on TensorFlow, through the platform, and saved."""
    from gravityml.data import load_dataset
    from gravityml.paradigms import TrainContext, train

    root = tmp_path_factory.mktemp("keras-text")
    spec = load_spec(_spec(root))
    dataset = load_dataset(spec)
    (root / "work").mkdir()
    result = train(TrainContext(spec=spec, workdir=root / "work", dataset=dataset, checkpoint_dir=root / "ckpt"))
    folder = result.model.save(root / "model")
    dataset.X.head(200).to_csv(root / "rows.csv", index=False)
    yield {"root": root, "dataset": dataset, "result": result, "folder": folder}


def test_text_network_trains_on_tensorflow_with_the_platform_tokenizer(trained: dict[str, Any]) -> None:
    from gravityml.models._torch import TorchEncoder

    result = trained["result"]
    assert result.metrics["test/accuracy"] > 0.8  # the majority class alone is ~0.7
    assert result.tags["framework"] == "tensorflow" and result.tags["keras.dtype_policy"] == "mixed_bfloat16"
    assert result.tags["text.max_tokens"].endswith("(sized from the longest training document)")
    model = result.model
    assert model.flavor == "keras" and model.meta["network"]["arch"] == "text"
    # The torch flavor's encoder: the same tokens, vocabulary and ids on both frameworks.
    assert isinstance(model.encoder, TorchEncoder) and model.encoder.vocabulary[:2] == ["<pad>", "<unk>"]
    assert "prize" in model.encoder.vocabulary
    ids = model.encode(pd.DataFrame({"text": ["free prize zzqx"]}))
    assert ids.dtype == np.int64 and ids[0, 2] == 1 and ids[0, 3:].sum() == 0  # unknown -> 1, padding -> 0
    assert (trained["root"] / "ckpt" / "keras" / "checkpoint.weights.h5").exists()


def test_saved_text_model_loads_and_predicts_with_confidence(trained: dict[str, Any]) -> None:
    from gravityml.models import load_model

    loaded = load_model(trained["folder"])
    new = pd.DataFrame({"text": NEW})
    out = loaded.predict(new)
    assert list(out["prediction"][:2]) == ["spam", "ham"] and out["confidence"].between(0.5, 1.0).all()
    proba = loaded.predict_proba(new)
    assert list(proba.columns) == ["ham", "spam"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(proba, trained["result"].model.predict_proba(new), atol=1e-6)
    # Padding does not move the pooled mean: a message alone and beside a longer one score the same.
    pair = loaded.predict_proba(pd.DataFrame({"text": [NEW[1], NEW[1] + " and more words here"]}))
    np.testing.assert_allclose(pair.iloc[0], proba.iloc[1], atol=1e-6)


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "tflite-int8"])
def test_text_exports_have_parity(trained: dict[str, Any], tmp_path: Path, fmt: str) -> None:
    from gravityml.inference import export_model
    from gravityml.inference._export import export_tflite

    rows = trained["root"] / "rows.csv"
    if fmt == "onnx":
        report = export_model(trained["folder"], tmp_path / "onnx", data=rows, latency=False)
    else:
        quantize = "int8" if fmt.endswith("int8") else None
        report = export_tflite(trained["folder"], tmp_path / fmt, data=rows, quantize=quantize,  # type: ignore[arg-type]
                               min_agreement=0.98 if quantize else 0.995)
    assert report.parity["passed"] and report.parity["label_agreement"] >= 0.98
    assert report.parity["max_abs_diff"] < (0.05 if fmt.endswith("int8") else 1e-4)


def test_cli_validates_and_trains_the_keras_text_example_and_predicts_from_the_registry(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLES.parent)  # from the repo root, as README and docs/own-models.md run it
    code, out, err = cli("validate", "examples/keras_text.yaml")
    assert code == 0, err
    assert "text (tensorflow: " in out and "auto x1, fp32" in out
    code, out, err = cli("train", "examples/keras_text.yaml")
    assert code == 0, err
    assert "spam-keras/1 registered" in out
    pd.DataFrame({"text": NEW}).to_csv(tmp_path / "new.csv", index=False)
    code, out, err = cli("predict", "spam-keras", str(tmp_path / "new.csv"), "-o", str(tmp_path / "out.csv"), "--proba")
    assert code == 0, err
    got = pd.read_csv(tmp_path / "out.csv")
    assert {"prediction", "confidence"} <= set(got.columns) and len(got) == 3
    assert got["confidence"].between(0.5, 1.0).all() and list(got["prediction"][:2]) == ["spam", "ham"]


def test_a_misspelt_text_parameter_is_refused_when_the_spec_loads(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"'dimm'.*did you mean 'dim'"):
        load_spec(_spec(tmp_path, params={"dimm": 16}))
