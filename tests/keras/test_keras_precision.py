"""`gravityml precision` on a Keras network: each precision probed and trained as its Keras dtype
policy through ``model.fit`` (not the torch loop), the report and chart written, the advice given;
``--model`` evaluates a registered Keras model with its network rebuilt under each policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.keras._jobs import iris_keras

from gravityml.data import load_dataset
from gravityml.errors import ComputeError
from gravityml.spec import load_spec

pytestmark = pytest.mark.xdist_group("tensorflow")


def _record_policies(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[str]:
    """``module.dtype_policy`` replaced by the real one that also notes each precision asked for."""
    from gravityml.models import _keras as flavor

    policies: list[str] = []
    real = flavor.dtype_policy

    def recording(precision: str) -> Any:
        policies.append(precision)
        return real(precision)

    monkeypatch.setattr(module, "dtype_policy", recording)
    return policies


def test_precision_command_trains_a_keras_network_at_each_dtype_policy(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gravityml.paradigms.deep import _keras

    policies = _record_policies(monkeypatch, _keras)  # which policies the comparison built networks under
    chart = tmp_path / "chart.png"
    code, out, err = cli("precision", str(iris_keras(tmp_path)), "-o", str(chart))
    assert code == 0, err
    report = json.loads(chart.with_suffix(".json").read_text())
    trained = [r["precision"] for r in report["rows"]]
    assert "fp32" in trained and {"fp64", "fp32", "bf16"} <= {p["precision"] for p in report["probes"]}
    # Every probe and every training went through fit_keras, under that precision's policy.
    assert set(policies) >= {"fp64", "fp32", "bf16"} and policies.count("fp32") >= 2
    assert all(0.0 <= r["metric"] <= 1.0 and r["samples_per_s"] > 0 for r in report["rows"])
    assert f"recommended {report['recommended']}" in out
    assert chart.stat().st_size > 0


def test_precision_model_option_evaluates_a_registered_keras_model_at_each_dtype_policy(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from gravityml.inference import load
    from gravityml.models import _keras as flavor

    spec = iris_keras(tmp_path)
    assert cli("train", str(spec))[0] == 0
    policies = _record_policies(monkeypatch, flavor)  # which policies the variants were built under
    chart = tmp_path / "m.png"
    code, out, err = cli("precision", str(spec), "--model", "iris-keras", "-o", str(chart))
    assert code == 0, err
    assert "inference at each precision" in out and " bf16 " in out
    report = json.loads(chart.with_suffix(".json").read_text())
    rows = {r["precision"]: r for r in report["rows"]}
    assert report["mode"] == "inference" and {"fp64", "fp32", "bf16"} <= set(rows)
    assert {"fp64", "bf16"} <= set(policies)  # each variant rebuilt under its precision's Keras policy
    assert all(0.0 <= r["metric"] <= 1.0 and r["samples_per_s"] > 0 for r in rows.values())
    assert rows["fp64"]["metric"] == rows["fp32"]["metric"]  # the same weights, float64 arithmetic
    assert abs(rows["bf16"]["metric"] - rows["fp32"]["metric"]) <= 0.1
    # The variant computes in bfloat16 (mixed_bfloat16: float32 variables), the model it came from does not.
    model = load("iris-keras")
    variant = model.with_precision("bf16")
    assert variant.precision == "bf16" and model.precision == "fp32"
    assert {layer.dtype_policy.name for layer in variant.network.layers} >= {"mixed_bfloat16"}
    assert "mixed_bfloat16" not in {layer.dtype_policy.name for layer in model.network.layers}
    assert {w.dtype for w in variant.network.weights} == {"float32"}
    rows_in = model.encode(model.prepare(load_dataset(load_spec(spec)).X.head(40)))
    base, low = model.raw_outputs(rows_in), variant.raw_outputs(rows_in)
    assert 0 < np.abs(low - base).max() < 0.5
    with pytest.raises(ComputeError, match=r"compute.precision: 'fp8' is not offered by cpu"):
        model.with_precision("fp8")

