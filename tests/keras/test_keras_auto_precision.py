"""``compute.precision: auto`` on a Keras network: each dtype policy measured on a slice of the
rows through ``model.fit`` (as for torch), the choice trained and tagged with its reason, the report
kept as an artifact and beside the checkpoint, and a resumed run keeping the decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.keras._jobs import iris_keras

from gravityml.data import load_dataset
from gravityml.paradigms import TrainContext, train
from gravityml.spec import load_spec

pytestmark = pytest.mark.xdist_group("tensorflow")


def test_precision_auto_measures_keras_policies_and_keeps_the_decision_on_resume(tmp_path: Path) -> None:
    spec = load_spec(iris_keras(tmp_path, "iris-keras-auto", precision="auto"))
    dataset = load_dataset(spec)
    (tmp_path / "w").mkdir()
    result = train(TrainContext(spec=spec, workdir=tmp_path / "w", dataset=dataset, checkpoint_dir=tmp_path / "ckpt"))
    chosen = result.tags["precision"]
    assert result.tags["precision.auto"].startswith("measured on 2000 rows max, 3 epochs")
    from gravityml.models._keras import POLICIES

    assert result.tags["keras.dtype_policy"] == POLICIES[chosen] and result.model.meta["precision"] == chosen
    report = json.loads((tmp_path / "w" / "precision_auto.json").read_text())
    assert report["recommended"] == chosen and "fp32" in [r["precision"] for r in report["rows"]]
    assert {"fp32", "bf16"} <= {p["precision"] for p in report["probes"]}
    assert tmp_path / "w" / "precision_auto.json" in result.artifacts
    assert result.metrics["test/accuracy"] > 0.6
    (tmp_path / "w2").mkdir()
    resumed = train(TrainContext(spec=spec, workdir=tmp_path / "w2", dataset=dataset, checkpoint_dir=tmp_path / "ckpt", resume=True))
    assert resumed.tags["precision"] == chosen and resumed.tags["precision.auto"].endswith("(decided before the resume)")
