"""Anomaly detection on the telemetry set (injected aberrant behaviour): quality against the label
used only for evaluation, the threshold saved with the model, predict's score and yes/no flag."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

import gravityml
from gravityml.errors import SpecError, TrainingError
from gravityml.execution import run_job
from gravityml.models import load_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TELEMETRY = EXAMPLES / "data" / "telemetry.csv"


def _generator():
    spec = importlib.util.spec_from_file_location("make_telemetry", EXAMPLES / "data" / "make_telemetry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_telemetry_file_is_what_the_generator_writes() -> None:
    made = _generator().make_telemetry()
    pd.testing.assert_frame_equal(made.reset_index(drop=True), pd.read_csv(TELEMETRY), check_dtype=False, atol=1e-3)
    assert made["injected"].sum() == 180 and set(made["anomaly_kind"]) > {"normal"}


def test_isolation_forest_finds_the_injected_anomalies(workspace, cli, tmp_path) -> None:
    result = run_job(EXAMPLES / "telemetry_isolation_forest.yaml")
    m = result.metrics
    assert m["test/roc_auc"] >= 0.9
    assert 0 < m["test/average_precision"] <= 1 and 0 < m["test/precision_at_k"] <= 1
    # contamination 0.03 set the threshold: that share of the training rows is flagged
    assert m["train/flagged_share"] == pytest.approx(0.03, abs=0.003)

    model = gravityml.load(result.model_ref)
    assert model.meta["threshold"] == pytest.approx(m["model/threshold"])
    rows = pd.read_csv(TELEMETRY)
    out = model.predict(rows)
    assert list(out.columns) == ["prediction", "score", "is_anomaly"]
    assert (out["is_anomaly"] == (out["score"] > model.meta["threshold"])).all()
    assert set(out["prediction"]) == {"anomaly", "normal"}
    # most injected rows are flagged, few normal ones are
    assert out.loc[rows["injected"] == 1, "is_anomaly"].mean() > 0.6
    assert out.loc[rows["injected"] == 0, "is_anomaly"].mean() < 0.05

    # the command line scores a file: input columns kept, score and flag appended
    code, stdout, _ = cli("predict", "telemetry-iforest", str(TELEMETRY), "-o", str(tmp_path / "scored.csv"))
    assert code == 0, stdout
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert {"injected", "anomaly_kind", "score", "is_anomaly"} <= set(scored.columns)
    assert (scored["is_anomaly"] == out["is_anomaly"]).all()


def test_autoencoder_finds_the_injected_anomalies(workspace) -> None:
    result = run_job(EXAMPLES / "telemetry_autoencoder.yaml")
    assert result.metrics["test/roc_auc"] >= 0.9
    assert result.metrics["train/flagged_share"] == pytest.approx(0.02, abs=0.003)  # target_fpr 0.02
    model = gravityml.load(result.model_ref)
    assert type(model).__name__ == "AutoencoderModel"
    rows = pd.read_csv(TELEMETRY).head(200)
    out = model.predict(rows)
    assert {"score", "is_anomaly", "prediction"} <= set(out.columns)
    assert (out["score"] >= 0).all()  # a mean squared error


@pytest.mark.parametrize("model_type", ["local_outlier_factor", "one_class_svm"])
def test_other_detectors_score_and_flag(fit, tmp_path, model_type) -> None:
    result = fit(model_type, {"target_fpr": 0.05}, source=str(TELEMETRY), target="injected", drop=["host", "anomaly_kind"])
    assert result.metrics["test/roc_auc"] > 0.8
    assert result.model.meta["threshold_rule"] == "target_fpr=0.05"
    loaded = load_model(result.model.save(tmp_path / "m"))
    sample = pd.read_csv(TELEMETRY).head(50)
    pd.testing.assert_frame_equal(loaded.predict(sample), result.model.predict(sample))


def test_threshold_settings_are_checked(fit) -> None:
    kwargs = {"source": str(TELEMETRY), "target": "injected", "drop": ["host", "anomaly_kind"]}
    with pytest.raises(TrainingError, match="contamination or target_fpr, not both"):
        fit("isolation_forest", {"contamination": 0.05, "target_fpr": 0.01}, **kwargs)
    with pytest.raises(TrainingError, match="target_fpr: must be a share"):
        fit("isolation_forest", {"target_fpr": 0.9}, **kwargs)
    with pytest.raises(SpecError, match="'layers' is not a parameter of the autoencoder network"):
        fit("autoencoder", {"layers": [8]}, **kwargs)
