"""Spark MLlib training and the spark flavor in local mode (``local[2]``, one session per module)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")  # the `spark` extra; `make test` installs it (dev)

from gravityml.models import load_model  # noqa: E402
from gravityml.paradigms.spark import stratified_split, train_spark  # noqa: E402

pytestmark = [pytest.mark.xdist_group("spark_local"), pytest.mark.slow]


def _rows(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(x1 + 0.5 * x2 + (colour == "red") > 0.3, "yes", "no")
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "label": label})


def test_gbt_trains_saves_loads_and_predicts_with_confidence(spark, tmp_path):
    frame = spark.createDataFrame(_rows())
    model, metrics = train_spark(frame, model_type="spark_gbt", target="label", params={"maxIter": 5}, seed=3)
    assert metrics["test/accuracy"] > 0.8, metrics
    assert 0.0 <= metrics["test/roc_auc"] <= 1.0
    assert metrics["data/train_rows"] + metrics["data/test_rows"] == 400
    folder = model.save(tmp_path / "m")
    loaded = load_model(folder)
    out = loaded.predict(_rows(20).drop(columns="label"))
    assert list(out.columns) == ["prediction", "confidence"]
    assert set(out["prediction"]) <= {"no", "yes"}
    assert ((out["confidence"] >= 0.5) & (out["confidence"] <= 1.0)).all()
    proba = loaded.predict_proba(_rows(5).drop(columns="label"))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_split_is_stratified_and_seeded(spark):
    frame = spark.createDataFrame(_rows())
    train, test = stratified_split(frame, "label", 0.25, seed=7)
    counts = _rows()["label"].value_counts()
    got = test.groupBy("label").count().toPandas().set_index("label")["count"]
    for cls, n in counts.items():
        assert abs(got[cls] - 0.25 * n) <= 1, (cls, got[cls], n)
    again = stratified_split(frame, "label", 0.25, seed=7)[1]
    assert sorted(map(tuple, test.toPandas().values.tolist())) == sorted(map(tuple, again.toPandas().values.tolist()))
    assert train.count() + test.count() == 400


def test_regression_and_clustering(spark):
    rows = _rows()
    rows["y"] = rows["x1"] * 2.0 + 1.0
    frame = spark.createDataFrame(rows.drop(columns="label"))
    _, metrics = train_spark(frame, model_type="spark_linear_regression", target="y", problem="regression")
    assert metrics["test/r2"] > 0.95, metrics
    km, kmetrics = train_spark(spark.createDataFrame(rows[["x1", "x2"]]), model_type="spark_kmeans",
                               problem="clustering", params={"k": 3})
    assert -1.0 <= kmetrics["test/silhouette"] <= 1.0
    assert km.kind == "clusterer"


def test_pyspark_is_not_imported_by_gravityml_itself():
    import subprocess

    code = "import gravityml.models, gravityml.paradigms.spark, sys; print('pyspark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_spark_job_reads_its_parquet_with_spark_and_a_regressor_scores_rows_without_target(spark, tmp_path):
    from gravityml.paradigms import TrainContext, train
    from gravityml.spec import load_spec

    rows = _rows()
    rows["y"] = rows["x1"] * 2.0 + 1.0
    rows.drop(columns="label").to_parquet(tmp_path / "rows.parquet")
    spec = load_spec({"name": "s", "task": "supervised", "model": {"type": "spark_linear_regression"},
                      "data": {"source": str(tmp_path / "rows.parquet"), "target": "y"}, "compute": {"accelerator": "cpu"}})
    result = train(TrainContext(spec=spec, workdir=tmp_path, dataset=None))  # read by the session, not here
    assert result.metrics["test/r2"] > 0.95 and result.tags["spark_master"] == "local[2]"
    assert result.tags["data_uri"] == str(tmp_path / "rows.parquet") and len(result.tags["data_fingerprint"]) == 64
    out = load_model(result.model.save(tmp_path / "m")).predict(rows[["x1", "x2", "colour"]].head(3))
    np.testing.assert_allclose(out["prediction"], rows["y"].head(3), atol=0.2)


def test_a_scikit_learn_job_placed_on_a_spark_site_is_refused_in_one_line(tmp_path):
    import yaml

    from gravityml.errors import PlacementError
    from gravityml.execution import run_job
    from gravityml.tracking import Workspace

    _rows().to_parquet(tmp_path / "rows.parquet")
    site = {"kind": "on_prem", "jurisdiction": "DE", "executor": {"spark": "local[1]"},
            "offers": [{"name": "w", "accelerator": "cpu", "per_node": 2, "owned": {"purchase_usd": 1000, "power_kw": 0.1}}]}
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump({"include_local": False, "sites": {"lake": site}, "datasets": {
        "events": {"uri": str(tmp_path / "rows.parquet"), "site": "lake"}}}))
    spec = {"name": "sk", "task": "supervised", "model": {"type": "logistic_regression"},
            "data": {"source": "events", "target": "label"}}
    # the planner rejects the Spark site for it (its executor would refuse the model type too)
    with pytest.raises(PlacementError, match=r"no site can take job 'sk'.*engine: a Spark site runs Spark MLlib jobs only"):
        run_job(spec, workspace=Workspace.current(tmp_path / "ws").ensure(), catalog=tmp_path / "gravityml.yaml")


def test_predict_on_a_spark_site_refuses_concurrency_and_a_ray_site_still_goes_to_ray(tmp_path, cli):
    import yaml

    offers = [{"name": "w", "accelerator": "cpu", "per_node": 2, "owned": {"purchase_usd": 1000, "power_kw": 0.1}}]
    sites = {"lake": {"kind": "on_prem", "jurisdiction": "DE", "executor": {"spark": "local[1]"}, "offers": offers},
             "here": {"kind": "on_prem", "jurisdiction": "DE", "executor": "local", "offers": offers}}
    catalog = tmp_path / "gravityml.yaml"
    catalog.write_text(yaml.safe_dump({"include_local": False, "sites": sites}))
    code, _, err = cli("predict", "m", str(tmp_path), "-o", str(tmp_path / "out"), "--site", "lake", "--catalog",
                       str(catalog), "--concurrency", "2")
    assert code != 0 and "--concurrency" in err and "spark.executor.cores" in err, err
    code, _, err = cli("predict", "m", str(tmp_path), "-o", str(tmp_path / "out"), "--site", "here", "--catalog",
                       str(catalog))
    assert code != 0 and "has no Ray cluster to score on" in err, err


def test_predict_on_a_local_spark_site_reads_a_csv_folder_as_gravityml_predict_reads_each_file(spark, tmp_path):
    """A local[2] site (this module's session, kept open): CSV read by Spark, the scores of `predict FILE`."""
    import yaml

    from gravityml.data import read_table
    from gravityml.execution._sparkscore import predict_on_spark_site
    from gravityml.inference import score_frame
    from gravityml.tracking import Workspace

    model, _ = train_spark(spark.createDataFrame(_rows()), model_type="spark_logistic_regression", target="label")
    folder = model.save(tmp_path / "m")
    (tmp_path / "in").mkdir()
    rows = _rows(60).drop(columns="label")
    for i in range(2):
        rows.iloc[i * 30:(i + 1) * 30].to_csv(tmp_path / "in" / f"part{i}.csv", index=False)
    site = {"kind": "on_prem", "jurisdiction": "DE", "executor": {"spark": "local[2]"},
            "offers": [{"name": "w", "accelerator": "cpu", "per_node": 2, "owned": {"purchase_usd": 1000, "power_kw": 0.1}}]}
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump({"include_local": False, "sites": {"lake": site}}))
    result = predict_on_spark_site(str(folder), str(tmp_path / "in"), str(tmp_path / "out"), site="lake",
                                   catalog=tmp_path / "gravityml.yaml", workspace=Workspace.current(tmp_path / "ws"))
    assert result.rows == 60 and result.files == 2 and result.engine == "pipeline"
    assert spark.sparkContext._jsc is not None  # the module's session was used and left open
    got = pd.read_parquet(tmp_path / "out").sort_values(["x1", "x2"]).reset_index(drop=True)
    loaded = load_model(folder)  # what `gravityml predict FILE` does with each file: read_table, score_frame
    want = pd.concat([score_frame(loaded, read_table(str(tmp_path / "in" / f"part{i}.csv"), role="input").frame)
                      for i in range(2)]).sort_values(["x1", "x2"]).reset_index(drop=True)
    assert got["prediction"].tolist() == want["prediction"].tolist()
    np.testing.assert_allclose(got["confidence"], want["confidence"], atol=1e-9)
    np.testing.assert_allclose(got[["x1", "x2"]], want[["x1", "x2"]], atol=1e-12)
