"""s3:// data on a Spark site without Hadoop's S3 connector: listed on the driver, read by pyarrow on the
executors, with the site's store from the catalog (moto's S3 server, ``local[2]``). Scoring: test_spark_s3_score.py."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")  # the `spark` extra
pytest.importorskip("moto")

pytestmark = [pytest.mark.xdist_group("spark_s3"), pytest.mark.slow]


def _rows(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(x1 + 0.5 * x2 + (colour == "red") > 0.3, "yes", "no")
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "label": label})


def _put(s3, key: str, frame: pd.DataFrame) -> None:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    s3.put_object(Bucket="lake", Key=key, Body=buf.getvalue())


@pytest.fixture(scope="module")
def trained(spark, s3_store, s3_lake, tmp_path_factory):
    """A spark_logistic_regression job on s3://lake/events/ (2 objects and a _SUCCESS), run on the site."""
    from gravityml.execution import run_job
    from gravityml.tracking import Workspace

    _, s3 = s3_store
    rows = _rows()
    _put(s3, "events/part-0.parquet", rows.iloc[:250])
    _put(s3, "events/part-1.parquet", rows.iloc[250:])
    s3.put_object(Bucket="lake", Key="events/_SUCCESS", Body=b"")
    spec = {"name": "lake-lr", "task": "supervised", "model": {"type": "spark_logistic_regression",
                                                               "params": {"maxIter": 20}},
            "data": {"source": "events", "target": "label"},
            "placement": {"estimate": {"hours": 0.01, "hardware": "cpu", "devices": 1}}}
    ws = Workspace.current(tmp_path_factory.mktemp("ws")).ensure()
    return run_job(spec, workspace=ws, catalog=s3_lake), ws


def test_a_spark_job_trains_on_an_s3_prefix_read_by_the_executors_with_the_sites_store(
        spark, s3_store, s3_lake, trained) -> None:
    from gravityml.data import load_catalog
    from gravityml.data._spark import read_spark_table, site_store, spark_fingerprint

    result, _ = trained
    assert result.lineage["site"] == "lake" and result.lineage["executor"] == "spark"
    assert result.lineage["data_uri"] == "s3://lake/events/"
    assert result.metrics["data/train_rows"] + result.metrics["data/test_rows"] == 400
    assert result.metrics["test/accuracy"] > 0.8, result.metrics
    # the fingerprint is the objects' listing (no Spark job): the same objects give it, one more changes it
    _, s3 = s3_store
    with site_store(load_catalog(s3_lake).sites["lake"].storage):
        frame, location = read_spark_table(spark, "s3://lake/events/")
        assert sorted(frame.columns) == ["colour", "label", "x1", "x2"]
        assert spark_fingerprint(frame, location) == result.lineage["data_fingerprint"]
        _put(s3, "events/part-2.parquet", _rows(10, seed=1))
        again, _ = read_spark_table(spark, "s3://lake/events/")
        assert spark_fingerprint(again, location) != result.lineage["data_fingerprint"]
    s3.delete_object(Bucket="lake", Key="events/part-2.parquet")


def test_an_empty_or_partitioned_prefix_is_refused_in_one_line(spark, s3_store, s3_lake) -> None:
    from gravityml.data import load_catalog
    from gravityml.data._spark import read_spark_table, site_store
    from gravityml.errors import DataError

    _, s3 = s3_store
    _put(s3, "parted/day=1/part-0.parquet", _rows(5))
    with site_store(load_catalog(s3_lake).sites["lake"].storage):
        with pytest.raises(DataError, match=r"'s3://lake/nothing/' holds no .parquet objects"):
            read_spark_table(spark, "s3://lake/nothing/")
        with pytest.raises(DataError, match=r"partitioned into key=value folders \(day=1\)"):
            read_spark_table(spark, "s3://lake/parted/")


def test_a_delta_table_on_s3_is_opened_with_the_sites_store_and_its_active_objects_listed(spark, s3_store,
                                                                                          s3_lake) -> None:
    import deltalake

    from gravityml.data import load_catalog
    from gravityml.data._spark import _TABLES, read_spark_table, site_store, store_env

    storage = load_catalog(s3_lake).sites["lake"].storage
    env = store_env(storage)
    options = {"AWS_ENDPOINT_URL": env["AWS_ENDPOINT_URL"], "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
               "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"], "AWS_REGION": "us-east-1",
               "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    deltalake.write_deltalake("s3://lake/delta", _rows(30), storage_options=options)
    deltalake.write_deltalake("s3://lake/delta", _rows(20, seed=3), mode="overwrite", storage_options=options)
    with site_store(storage):
        frame, location = read_spark_table(spark, "s3://lake/delta")  # the log read here; no Spark job yet
    assert sorted(frame.columns) == ["colour", "label", "x1", "x2"]
    assert _TABLES[location]["delta_version"] == "1" and _TABLES[location]["data_files"] == "1"
