"""`gravityml precision` on a Keras network: each precision probed and trained as its Keras dtype
policy through ``model.fit`` (not the torch loop), the report and chart written, the advice given;
``--model`` (evaluating a registered model) says it is torch only and what to run instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.keras._jobs import iris_keras

pytestmark = pytest.mark.xdist_group("tensorflow")


def test_precision_command_trains_a_keras_network_at_each_dtype_policy(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gravityml.models import _keras as flavor
    from gravityml.paradigms.deep import _keras

    policies: list[str] = []
    real = flavor.dtype_policy

    def recording(precision: str) -> Any:  # the real policy, noted: which policies the comparison built networks under
        policies.append(precision)
        return real(precision)

    monkeypatch.setattr(_keras, "dtype_policy", recording)
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


def test_precision_model_option_refuses_a_keras_spec_with_the_command_to_run(cli: Any, tmp_path: Path) -> None:
    spec = iris_keras(tmp_path)
    code, _, err = cli("precision", str(spec), "--model", "iris-keras")
    assert code == 2 and "Keras models are compared by training" in err and f"gravityml precision {spec}" in err
