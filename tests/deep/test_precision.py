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
    from gravityml.compute._precision import _cpu_flags

    # The CPU offers fp16 only where it has AVX-512 FP16 or AMX-FP16 (the Xeon CI machines do).
    offered = ["fp64", "fp32", "fp16", "bf16"] if {"avx512_fp16", "amx_fp16"} & _cpu_flags() else ["fp64", "fp32", "bf16"]
    for name in offered:
        assert f" {name} " in out
    assert "test accuracy" in out and "samples/s" in out and "peak MB" in out
    report = json.loads(chart.with_suffix(".json").read_text())
    rows = {r["precision"]: r for r in report["rows"]}
    # Every offered precision is probed; each one is then trained or skipped with a measured reason.
    assert [p["precision"] for p in report["probes"]] == offered
    assert all(p["samples_per_s"] > 0 for p in report["probes"])
    assert "fp32" in rows and set(rows) | set(report["skipped"]) == set(offered)
    assert not set(rows) & set(report["skipped"])
    for name, why in report["skipped"].items():
        assert why.startswith("probe: ") and "samples/s" in why or "advice budget" in why, why
        assert f"{name} not trained: probe" in out
    assert all(r["samples_per_s"] > 0 and 0 <= r["metric"] <= 1 for r in rows.values())
    top = rows[next(p for p in ("fp64", "fp32", "bf16") if p in rows)]["metric"]
    good = [r for r in rows.values() if top - r["metric"] <= 0.02]
    assert report["recommended"] == max(good, key=lambda r: r["samples_per_s"])["precision"]
    assert f"recommended {report['recommended']}" in out and "advice took" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert cli("train", str(spec))[0] == 0
    code, out, err = cli("precision", str(spec), "--model", "tiny-mlp", "-o", str(tmp_path / "m.png"))
    assert code == 0, err
    assert "inference at each precision" in out and " bf16 " in out


def _advice(tmp_path: Path, **options: Any) -> Any:
    from gravityml.data import load_dataset
    from gravityml.paradigms import TrainContext
    from gravityml.paradigms.deep._precision import compare_training
    from gravityml.spec import load_spec

    spec = load_spec(tiny_mlp(tmp_path))
    dataset = load_dataset(spec)
    return compare_training(TrainContext(spec=spec, workdir=tmp_path, dataset=dataset), dataset, **options)


def test_a_precision_slower_than_the_limit_is_probed_not_trained(tmp_path: Path) -> None:
    """With a 0x limit every precision but fp32 is 'too slow': none trains, each says why, with its speeds."""
    report = _advice(tmp_path, precisions=["fp64", "fp32", "bf16"], slowdown_limit=0.0)
    assert [r.precision for r in report.rows] == ["fp32"] and report.recommended == "fp32"
    probes = {p.precision: p for p in report.probes}
    for name in ("fp64", "bf16"):
        slower = probes["fp32"].samples_per_s / probes[name].samples_per_s
        assert report.skipped[name].startswith(f"probe: {slower:.1f}x slower than fp32 (")
        assert "over the 0x limit" in report.skipped[name]
        # A probe is stopped once it has run the limit times the fp32 probe's time (here: at once).
        assert probes[name].stopped_early and probes[name].seconds < probes["fp32"].seconds + 5
    assert "not trained: fp64 (probe:" in report.reason


def test_the_advice_budget_skips_what_cannot_win_in_time(tmp_path: Path) -> None:
    """No budget: only fp32 and the fastest precision that beats fp32 in the probe (if any) train."""
    report = _advice(tmp_path, precisions=["fp64", "fp32", "bf16"], budget=0.0)
    speed = {p.precision: p.samples_per_s for p in report.probes}
    faster = sorted((n for n in ("fp64", "bf16") if speed[n] > speed["fp32"]), key=lambda n: -speed[n])
    assert [r.precision for r in report.rows] == [n for n in ("fp64", "fp32", "bf16") if n == "fp32" or n in faster[:1]]
    for name in set(("fp64", "bf16")) - {r.precision for r in report.rows}:
        why = report.skipped[name]
        assert "advice budget (0x one fp32 training)" in why or "over the 3x limit" in why, why
    assert report.seconds >= report.reference_seconds > 0


def test_precision_command_refuses_a_non_torch_model(cli: Any, tmp_path: Path, write_spec: Any) -> None:
    code, _, err = cli("precision", str(write_spec(tmp_path / "iris.yaml")))
    assert code == 2 and "precision compares torch-backed models" in err


def test_precision_auto_measures_and_records_its_decision(workspace: Workspace, tmp_path: Path) -> None:
    result = run_job(tiny_mlp(tmp_path, precision="auto"), workspace=workspace)
    chosen = result.lineage["precision"]
    assert chosen in {"fp64", "fp32", "bf16"}
    assert result.lineage["precision.auto"].startswith(f"measured on 2000 rows max, 2 epochs: {chosen}: fastest")
    run = workspace.client.get_run(result.run_id)
    probed = {f"precision/{p}_probe_samples_per_s" for p in ("fp64", "fp32", "bf16")}
    assert {"precision/fp32_accuracy", f"precision/{chosen}_samples_per_s", *probed} <= set(run.data.metrics)
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
