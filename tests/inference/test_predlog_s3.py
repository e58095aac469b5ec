"""Prediction logs uploaded to an s3:// prefix, against moto's S3 server on 127.0.0.1, and read back
by ``gravityml monitor --logs s3://...``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from tests.inference.conftest import workspace_env
from tests.lifecycle.conftest import loans, world  # noqa: F401 - world: credit/1 trained on old.csv

pytestmark = pytest.mark.xdist_group("inference-predlog-s3")  # one S3 server and workspace for the module


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)  # port 0: a free one
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture()
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - a boto3 client
    import boto3

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    return boto3.client("s3", endpoint_url=s3_endpoint)


def _keys(s3, bucket: str, prefix: str = "") -> list[str]:  # noqa: ANN001
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def _scored(frame: pd.DataFrame) -> pd.DataFrame:
    import gravityml

    return gravityml.load("credit/1").predict(frame.drop(columns=["approved"]))


def test_closed_files_appear_under_their_final_names_and_monitor_reads_them_back(
    world: Path, s3, cli  # noqa: ANN001, F811
) -> None:
    from gravityml.inference._predlog import LogConfig, PredictionLogger

    s3.create_bucket(Bucket="logs")
    with workspace_env(world / "ws"):
        logger = PredictionLogger(LogConfig(target="s3://logs/credit/", roll_bytes=1, flush_rows=100))
        for seed in range(5):
            batch = loans(100, 100 + seed)
            logger.log(batch, _scored(batch), model_version="credit/1", latency_ms=1.0)
        logger.close()
        keys = _keys(s3, "logs")
        # five closed files (each flush over roll_bytes rolls), under their final names only: no
        # partial or hidden key was ever left, and the local spool is gone
        assert len(keys) == 5 and all(k.startswith("credit/predictions-") and k.endswith(".parquet") for k in keys)
        assert sorted(logger.files) == [f"s3://logs/{k}" for k in keys] and logger.upload_failures == 0
        assert not Path(logger._local).exists()
        frames = [pd.read_parquet(io.BytesIO(s3.get_object(Bucket="logs", Key=k)["Body"].read())) for k in keys]
        assert sum(len(f) for f in frames) == 500 == logger.logged_rows
        assert set(frames[0]["_gml_model_version"]) == {"credit/1"} and set(frames[0]["_gml_role"]) == {"served"}

        # a reader sees whole files only: a key being written elsewhere (hidden) is skipped
        s3.put_object(Bucket="logs", Key="credit/.predictions-x.parquet.partial", Body=b"not yet parquet")
        code, out, err = cli("monitor", "credit/1", "--logs", "s3://logs/credit/", "--no-log", "--metric-drop", "0.15")
        assert code == 0, out + err
        assert "500 recent rows" in out and "no drift over the thresholds" in out
        assert "compared  500 of 500 logged rows (version credit/1)" in out


def test_a_failed_upload_keeps_the_file_locally_and_counts(world: Path, s3) -> None:  # noqa: ANN001, F811
    from gravityml.inference._predlog import LogConfig, PredictionLogger

    logger = PredictionLogger(LogConfig(target="s3://no-such-bucket/logs/"))
    batch = loans(20, 7)
    logger.log(batch, pd.DataFrame({"prediction": ["yes"] * 20}), model_version="credit/1", latency_ms=1.0)
    logger.close()
    kept = sorted(Path(logger._local).glob("*.parquet"))
    assert logger.files == [] and logger.upload_failures >= 1
    assert len(kept) == 1 and len(pd.read_parquet(kept[0])) == 20  # nothing lost: it waits for the next try
