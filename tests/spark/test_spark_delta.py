"""Delta tables as a Spark job's input: delta-rs reads the snapshot (version, active files), Spark the files."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("pyspark")  # the `spark` extra
deltalake = pytest.importorskip("deltalake")

from tests.spark.test_spark_s3 import _rows  # noqa: E402

pytestmark = [pytest.mark.xdist_group("spark_delta"), pytest.mark.slow]


def test_a_spark_job_trains_on_a_delta_tables_snapshot_and_records_its_version(spark, tmp_path, workspace) -> None:
    from gravityml.data._spark import read_spark_table
    from gravityml.execution import run_job

    table = tmp_path / "events"
    deltalake.write_deltalake(table, _rows(300, seed=1))
    deltalake.write_deltalake(table, _rows(400), mode="overwrite")  # version 1; version 0's file stays on disk
    assert len(list(table.glob("*.parquet"))) == 2
    site = {"kind": "on_prem", "jurisdiction": "DE", "executor": {"spark": {"master": "local[2]", "executors": {
        "count": 1, "cores": 2, "memory_gb": 1, "hourly_usd": 0.1}}}}
    catalog = tmp_path / "gravityml.yaml"
    catalog.write_text(yaml.safe_dump({"include_local": False, "sites": {"lake": site},
                                       "datasets": {"events": {"uri": str(table), "site": "lake", "size_gb": 0.001}}}))
    spec = {"name": "delta-lr", "task": "supervised", "data": {"source": "events", "target": "label"},
            "model": {"type": "spark_logistic_regression", "params": {"maxIter": 10}},
            "placement": {"estimate": {"hours": 0.01, "hardware": "cpu", "devices": 1}}}
    result = run_job(spec, workspace=workspace, catalog=catalog)
    assert result.lineage["site"] == "lake" and result.lineage["data_uri"] == str(table)
    assert result.lineage["delta_version"] == "1" and result.lineage["data_files"] == "1"
    assert result.metrics["data/train_rows"] + result.metrics["data/test_rows"] == 400  # not version 0's 300 too
    assert result.metrics["test/accuracy"] > 0.8, result.metrics
    versions = workspace.client.search_model_versions("name = 'delta-lr'")
    assert versions[0].tags["gravityml.delta_version"] == "1"
    deltalake.write_deltalake(table, _rows(10, seed=2), mode="append")  # version 2: another fingerprint
    from gravityml.data._spark import _TABLES

    read_spark_table(spark, str(table))
    assert _TABLES[str(table)]["delta_version"] == "2"
    assert _TABLES[str(table)]["data_fingerprint"] != result.lineage["data_fingerprint"]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        ({"configuration": {"delta.enableDeletionVectors": "true"}}, r"enables deletion vectors"),
        ({"configuration": {"delta.columnMapping.mode": "name"}}, r"maps its column names \(delta.columnMapping.mode=name\)"),
        ({"partition_by": ["colour"]}, r"is partitioned by \['colour'\]"),
    ],
)
def test_delta_features_it_cannot_read_from_the_files_alone_are_refused_before_any_job(spark, tmp_path, write,
                                                                                      message) -> None:
    from gravityml.data._spark import read_spark_table
    from gravityml.errors import DataError

    deltalake.write_deltalake(tmp_path / "t", _rows(20), **write)
    with pytest.raises(DataError, match=r"data.source: the Delta table .* " + message) as info:
        read_spark_table(spark, str(tmp_path / "t"))
    assert info.value.fix and info.value._has_allowed
