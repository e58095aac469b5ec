"""Precision as a measured choice: `gravityml precision`, `precision: auto`, and the digits CNN."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gravityml.execution import run_job
from gravityml.tracking import Workspace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def tiny_mlp(tmp_path: Path, **compute: Any) -> Path:
    """An MLP on iris: every precision trains in well under a second."""
    doc = {
        "name": "tiny-mlp",
        "task": "supervised",
        "data": {"source": "sklearn:iris", "target": "target", "split": {"test": 0.4, "seed": 2}},
        "model": {"type": "mlp", "params": {"hidden": [16]}},
        "train": {"epochs": 2, "batch_size": 16, "lr": 0.02},
        "compute": {"accelerator": "cpu", "threads": 2, **compute},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_precision_command_lists_each_precision_and_recommends_one(cli: Any, tmp_path: Path) -> None:
    spec = tiny_mlp(tmp_path)
    chart = tmp_path / "chart.png"
    code, out, err = cli("precision", str(spec), "-o", str(chart), "--tolerance", "2")
    assert code == 0, err
    for name in ("fp64", "fp32", "bf16"):
        assert f" {name} " in out
    assert "test accuracy" in out and "samples/s" in out and "peak MB" in out
    report = json.loads(chart.with_suffix(".json").read_text())
    rows = {r["precision"]: r for r in report["rows"]}
    assert list(rows)[:2] == ["fp64", "fp32"] and "bf16" in rows
    assert all(r["samples_per_s"] > 0 and 0 <= r["metric"] <= 1 for r in rows.values())
    best = max(rows.values(), key=lambda r: r["metric"])["metric"]
    good = [r for r in rows.values() if rows["fp64"]["metric"] - r["metric"] <= 0.02]
    assert report["recommended"] == max(good, key=lambda r: r["samples_per_s"])["precision"]
    assert f"recommended {report['recommended']}" in out and best >= rows["fp64"]["metric"] - 1e-12
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert cli("train", str(spec))[0] == 0
    code, out, err = cli("precision", str(spec), "--model", "tiny-mlp", "-o", str(tmp_path / "m.png"))
    assert code == 0, err
    assert "inference at each precision" in out and " bf16 " in out


def test_precision_command_refuses_a_non_torch_model(cli: Any, tmp_path: Path, write_spec: Any) -> None:
    code, _, err = cli("precision", str(write_spec(tmp_path / "iris.yaml")))
    assert code == 2 and "precision compares torch-backed models" in err


def test_precision_auto_measures_and_records_its_decision(workspace: Workspace, tmp_path: Path) -> None:
    result = run_job(tiny_mlp(tmp_path, precision="auto"), workspace=workspace)
    chosen = result.lineage["precision"]
    assert chosen in {"fp64", "fp32", "bf16"}
    assert result.lineage["precision.auto"].startswith(f"measured on 2000 rows max, 2 epochs: {chosen}: fastest")
    run = workspace.client.get_run(result.run_id)
    assert {"precision/fp64_accuracy", "precision/bf16_samples_per_s"} <= set(run.data.metrics)
    version = workspace.client.get_model_version("tiny-mlp", str(result.version))
    assert version.tags["gravityml.precision.auto"].startswith("measured")


@pytest.mark.slow
def test_digits_cnn_reaches_97_percent(workspace: Workspace, tmp_path: Path) -> None:
    """The acceptance run of examples/digits_cnn.yaml, on a shorter schedule to fit the test budget
    (the full example and its numbers: docs/deep-learning.md)."""
    doc = yaml.safe_load((EXAMPLES / "digits_cnn.yaml").read_text())
    doc["train"].update(epochs=6)
    doc["compute"]["threads"] = 2
    (tmp_path / "digits.yaml").write_text(yaml.safe_dump(doc))
    result = run_job(tmp_path / "digits.yaml", workspace=workspace)
    assert result.metrics["test/accuracy"] >= 0.97
