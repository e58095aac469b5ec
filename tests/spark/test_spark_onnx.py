"""ONNX export of Spark pipelines (onnxmltools' Spark ML converter) with the export's parity check."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pyspark")  # the `spark` extra
pytest.importorskip("onnxmltools")

from tests.spark.test_spark_s3 import _rows  # noqa: E402

pytestmark = [pytest.mark.xdist_group("spark_onnx"), pytest.mark.slow]


def test_a_spark_classifier_exports_to_onnx_and_its_scores_match_the_pipelines(spark, tmp_path) -> None:
    from gravityml.inference import export_model
    from gravityml.inference._onnx import OnnxModel
    from gravityml.models import load_model
    from gravityml.paradigms.spark import train_spark
    from gravityml.tracking import Workspace

    model, _ = train_spark(spark.createDataFrame(_rows()), model_type="spark_logistic_regression", target="label",
                           params={"maxIter": 10}, seed=1)
    folder = model.save(tmp_path / "m")
    _rows(200, seed=5).drop(columns="label").to_csv(tmp_path / "held.csv", index=False)
    report = export_model(folder, tmp_path / "out", data=tmp_path / "held.csv",
                          workspace=Workspace.current(tmp_path / "ws"), latency=False)
    assert report.parity["passed"] and report.parity["label_agreement"] >= 0.995, report.parity
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert [i["columns"] for i in metadata["inputs"]] == [["x1"], ["x2"], ["colour"]]
    assert metadata["outputs"] == {"probabilities": "probability"} and metadata["model"]["flavor"] == "spark"
    rows = _rows(20, seed=6).drop(columns="label")
    native, onnx = load_model(folder).predict(rows), OnnxModel(tmp_path / "out").predict(rows)
    assert native["prediction"].tolist() == onnx["prediction"].tolist()
    np.testing.assert_allclose(native["confidence"], onnx["confidence"], atol=1e-4)


def test_a_spark_regressor_exports_and_a_forest_and_a_clusterer_are_refused_in_one_line(spark, tmp_path) -> None:
    from gravityml.errors import ExportError
    from gravityml.inference import export_model
    from gravityml.paradigms.spark import train_spark
    from gravityml.tracking import Workspace

    rows = _rows()
    rows["y"] = rows["x1"] * 2.0 + 1.0
    reg, _ = train_spark(spark.createDataFrame(rows.drop(columns="label")), model_type="spark_linear_regression",
                         target="y", problem="regression")
    rows.drop(columns=["label", "y"]).head(100).to_csv(tmp_path / "held.csv", index=False)
    ws = Workspace.current(tmp_path / "ws")
    report = export_model(reg.save(tmp_path / "r"), tmp_path / "out", data=tmp_path / "held.csv", workspace=ws,
                          latency=False)
    assert report.parity["passed"] and report.parity["max_abs_diff"] < 1e-3, report.parity
    km, _ = train_spark(spark.createDataFrame(rows[["x1", "x2"]]), model_type="spark_kmeans", problem="clustering",
                        params={"k": 3})
    with pytest.raises(ExportError, match=r"a Spark clusterer cannot be exported to ONNX yet"):
        export_model(km.save(tmp_path / "k"), tmp_path / "kout", data=tmp_path / "held.csv", workspace=ws)
    forest, _ = train_spark(spark.createDataFrame(_rows()), model_type="spark_random_forest", target="label",
                            params={"numTrees": 5, "maxDepth": 4}, seed=1)
    with pytest.raises(ExportError, match=r"a Spark RandomForestClassificationModel does not export to ONNX yet"):
        export_model(forest.save(tmp_path / "f"), tmp_path / "fout", data=tmp_path / "held.csv", workspace=ws)
