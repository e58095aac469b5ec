"""Batch scoring of an s3:// prefix on a Spark site without Hadoop's S3 connector: read and written by
pyarrow on the executors, published once or not at all (moto's S3 server, ``local[2]``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")  # the `spark` extra
pytest.importorskip("moto")

from tests.spark.test_spark_s3 import _put, _rows  # noqa: E402

pytestmark = [pytest.mark.xdist_group("spark_s3_score"), pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    """A spark_logistic_regression fitted on rows here (its training on s3:// is test_spark_s3.py's)."""
    from gravityml.paradigms.spark import train_spark

    model, _ = train_spark(spark.createDataFrame(_rows()), model_type="spark_logistic_regression",
                           target="label", params={"maxIter": 10}, seed=1)
    return model.save(tmp_path_factory.mktemp("m") / "m")


def test_scoring_an_s3_prefix_writes_every_row_once_to_s3_or_publishes_nothing(spark, s3_store, s3_lake, trained, tmp_path) -> None:
    import pyarrow.parquet as pq

    from gravityml.data import load_catalog
    from gravityml.data._spark import store_env, store_filesystem
    from gravityml.errors import GravityMLError
    from gravityml.execution._sparkscore import predict_on_spark_site
    from gravityml.models import load_model
    from gravityml.tracking import Workspace

    _, s3 = s3_store
    ref, ws = str(trained), Workspace.current(tmp_path / "ws")
    new = _rows(60, seed=2).drop(columns="label")
    _put(s3, "new/part0.parquet", new.iloc[:30])
    _put(s3, "new/part1.parquet", new.iloc[30:])
    done = predict_on_spark_site(ref, "s3://lake/new/", "s3://lake/scores/", site="lake", catalog=s3_lake,
                                 proba=True, workspace=ws)
    assert done.rows == 60 and done.files == 2 and done.engine == "pipeline"
    fs = store_filesystem(store_env(load_catalog(s3_lake).sites["lake"].storage))
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="scores/")["Contents"])
    assert "scores/_SUCCESS" in keys and not any("_tmp-" in k for k in keys)
    parts = [k for k in keys if k.endswith(".parquet")]
    assert set(keys) - set(parts) <= {"scores/_SUCCESS", "scores/"}  # pyarrow's folder marker
    got = pd.concat([pq.read_table(f"lake/{k}", filesystem=fs).to_pandas() for k in parts])
    got = got.sort_values(["x1", "x2"]).reset_index(drop=True)
    model = load_model(trained)
    want = pd.concat([new, model.predict(new)], axis=1).sort_values(["x1", "x2"]).reset_index(drop=True)
    assert len(got) == 60 and got["prediction"].tolist() == want["prediction"].tolist()
    np.testing.assert_allclose(got["confidence"], want["confidence"], atol=1e-9)
    assert {"proba_no", "proba_yes"} <= set(got.columns)
    # an unseen category in the second object: nothing is published, the error names the object and row
    bad = new.copy()
    bad.loc[37, "colour"] = "purple"
    _put(s3, "bad/part0.parquet", bad.iloc[:30])
    _put(s3, "bad/part1.parquet", bad.iloc[30:])
    with pytest.raises(GravityMLError, match=r"published nothing: input 's3://lake/bad/part1.parquet': "
                                             r"column 'colour', row 8: category 'purple'"):
        predict_on_spark_site(ref, "s3://lake/bad/", "s3://lake/bad-scores/", site="lake", catalog=s3_lake, workspace=ws)
    assert "Contents" not in s3.list_objects_v2(Bucket="lake", Prefix="bad-scores/")
