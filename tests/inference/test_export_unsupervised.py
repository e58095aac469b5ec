"""ONNX export of clusterers, anomaly detectors, PCA and the autoencoder: parity, plain onnxruntime,
serving the export, and the typed refusal for types that cannot be exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.inference.test_kinds import call

from gravityml.errors import ExportError

ROOT = Path(__file__).resolve().parents[2]
TELEMETRY = {"source": str(ROOT / "examples" / "data" / "telemetry.csv"), "target": "injected", "drop": ["host", "anomaly_kind"]}
IRIS = {"source": "sklearn:iris", "target": "target", "drop": []}


def fit_and_save(tmp: Path, model_type: str, params: dict[str, Any], data: dict[str, Any], **extra: Any) -> tuple[Path, Path]:
    """Train through the paradigm (no MLflow), save the model folder; return it and its held-out rows."""
    from gravityml.data import load_dataset
    from gravityml.paradigms import TrainContext, train
    from gravityml.spec import load_spec

    spec = load_spec({"name": f"x-{model_type}", "task": "unsupervised", "data": data,
                      "model": {"type": model_type, "params": params}, "compute": {"accelerator": "cpu"}, **extra})
    workdir = tmp / f"work-{model_type}"
    workdir.mkdir()
    dataset = load_dataset(spec)
    result = train(TrainContext(spec=spec, workdir=workdir, dataset=dataset))
    folder = result.model.save(tmp / f"model-{model_type}")
    held_out = tmp / f"{model_type}-test.csv"
    dataset.split().test[dataset.features].to_csv(held_out, index=False)
    return folder, held_out


def run_plain(export: Path, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The export run as a device would: onnxruntime fed from metadata.json, nothing of gravityml."""
    import onnxruntime as ort

    meta = json.loads((export / "metadata.json").read_text())
    session = ort.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {i["name"]: rows[i["columns"]].to_numpy(dtype=np.float32) for i in meta["inputs"]}
    roles = list(meta["outputs"])
    return dict(zip(roles, session.run([meta["outputs"][r] for r in roles], feeds)))


def test_kmeans_on_iris_exports_by_cli_agrees_and_is_served(workspace, cli, tmp_path: Path) -> None:
    from gravityml.inference import create_app, load
    from gravityml.inference._repository import load_for_serving

    folder, held_out = fit_and_save(tmp_path, "kmeans", {"n_clusters": 3}, IRIS)
    out = tmp_path / "kmeans-onnx"
    code, stdout, stderr = cli("export", str(folder), "--format", "onnx", "--data", str(held_out), "-o", str(out))
    assert code == 0, stderr
    parity = json.loads((out / "parity.json").read_text())
    assert parity["kind"] == "clusterer" and parity["passed"]
    assert parity["label_agreement"] == 1.0 and parity["max_abs_diff"] < 1e-4
    meta = json.loads((out / "metadata.json").read_text())
    assert set(meta["outputs"]) == {"label", "probabilities"} and meta["label_map"] == {"0": 0, "1": 1, "2": 2}

    rows = pd.read_csv(held_out)
    native = load(folder).predict(rows)
    plain = run_plain(out, rows)
    np.testing.assert_array_equal(plain["label"], native["prediction"].to_numpy())
    np.testing.assert_allclose(plain["probabilities"].max(axis=1), native["confidence"], atol=1e-4)

    loaded = load_for_serving(str(out))
    body = {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP64", "data": rows.to_numpy().tolist()}]}
    response = call(create_app([loaded]), "POST", f"/v2/models/{loaded.name}/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    assert outputs["prediction"] == native["prediction"].tolist()


def test_isolation_forest_on_telemetry_scores_and_flags_as_the_original(workspace, tmp_path: Path) -> None:
    from gravityml.inference import OnnxModel, export_model, load

    folder, held_out = fit_and_save(tmp_path, "isolation_forest", {"n_estimators": 50}, TELEMETRY)
    report = export_model(folder, tmp_path / "iforest", data=held_out)
    p = report.parity
    native_model = load(folder)
    assert p["kind"] == "anomaly_detector" and p["rows"] == 1200
    assert p["max_abs_diff"] < 1e-4 and p["flag_agreement"] >= 0.995
    assert p["threshold"] == pytest.approx(native_model.meta["threshold"])

    rows = pd.read_csv(held_out)
    native = native_model.predict(rows)
    plain = run_plain(report.directory, rows)
    np.testing.assert_allclose(plain["score"].ravel(), native["score"], atol=1e-4)
    assert (plain["is_anomaly"].ravel() == native["is_anomaly"].to_numpy()).mean() >= 0.995
    assert native["is_anomaly"].sum() > 0  # the threshold flags some rows, so agreement means something
    served = OnnxModel(report.directory).predict(rows)
    assert (served["prediction"] == native["prediction"]).mean() >= 0.995

    # Parity worse than the thresholds: a typed error, and nothing written.
    with pytest.raises(ExportError, match="differ from the original's by up to"):
        export_model(folder, tmp_path / "strict", data=held_out, max_diff=0.0)
    with pytest.raises(ExportError, match="held-out anomaly flags"):
        export_model(folder, tmp_path / "strict", data=held_out, min_agreement=1.01)
    assert not (tmp_path / "strict").exists()


def test_pca_components_and_confidence_match(workspace, tmp_path: Path) -> None:
    from gravityml.inference import OnnxModel, export_model, load

    folder, held_out = fit_and_save(tmp_path, "pca", {}, IRIS)
    report = export_model(folder, tmp_path / "pca", data=held_out)
    assert report.parity["kind"] == "reducer" and report.parity["max_abs_diff"] < 1e-4
    assert report.parity["confidence_max_abs_diff"] < 1e-4
    rows = pd.read_csv(held_out)
    native = load(folder).predict(rows)
    plain = run_plain(report.directory, rows)
    np.testing.assert_allclose(plain["components"], native[["component_1", "component_2"]], atol=1e-4)
    np.testing.assert_allclose(plain["confidence"].ravel(), native["confidence"], atol=1e-4)
    assert list(OnnxModel(report.directory).predict(rows).columns) == list(native.columns)


def test_autoencoder_reconstruction_error_exports(workspace, tmp_path: Path) -> None:
    from gravityml.inference import export_model, load

    folder, held_out = fit_and_save(tmp_path, "autoencoder", {"hidden": [16], "code": 3}, TELEMETRY,
                                    train={"epochs": 3, "batch_size": 256, "seed": 7})
    report = export_model(folder, tmp_path / "ae", data=held_out)
    p = report.parity
    assert p["kind"] == "anomaly_detector" and p["max_diff_relative_to_std"] < 1e-3 and p["flag_agreement"] >= 0.995
    rows = pd.read_csv(held_out)
    native = load(folder).predict(rows)
    plain = run_plain(report.directory, rows)
    np.testing.assert_allclose(plain["score"].ravel(), native["score"], rtol=1e-3, atol=1e-4)
    assert (plain["is_anomaly"].ravel() == native["is_anomaly"].to_numpy()).mean() >= 0.995


def test_a_type_without_a_rule_for_new_rows_is_refused_in_one_line(workspace, cli, tmp_path: Path) -> None:
    folder, held_out = fit_and_save(tmp_path, "dbscan", {}, IRIS)
    code, stdout, stderr = cli("export", str(folder), "--data", str(held_out), "-o", str(tmp_path / "db"))
    assert code == 2
    line = stderr.strip()
    assert "\n" not in line
    assert "dbscan clusterer cannot be exported" in line and "kmeans" in line and "isolation_forest" in line
    assert not (tmp_path / "db").exists()


@pytest.mark.parametrize("model_type", ["gaussian_mixture", "one_class_svm", "local_outlier_factor"])
def test_the_other_exportable_types_pass_parity(workspace, tmp_path: Path, model_type: str) -> None:
    from gravityml.inference import OnnxModel, export_model, load

    folder, held_out = fit_and_save(tmp_path, model_type, {}, IRIS)
    report = export_model(folder, tmp_path / model_type, data=held_out)
    assert report.parity["passed"] and report.parity["max_abs_diff"] < 1e-3
    assert report.parity.get("label_agreement", report.parity.get("flag_agreement")) >= 0.995
    rows = pd.read_csv(held_out)
    native, exported = load(folder).predict(rows), OnnxModel(report.directory).predict(rows)
    assert list(exported.columns) == list(native.columns)
    assert (exported["prediction"].to_numpy() == native["prediction"].to_numpy()).mean() >= 0.95
