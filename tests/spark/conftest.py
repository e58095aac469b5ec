"""Fixtures of the s3:// Spark tests: moto's S3 server, a local[2] session, a catalog whose Spark site has the store."""

from __future__ import annotations

import pytest
import yaml

from gravityml.models._spark import local_session


@pytest.fixture(scope="module")
def s3_store():
    """moto's S3 server on 127.0.0.1 and a boto3 client on it (the keys are the site's, not AWS_*)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="lake-key", aws_secret_access_key="lake-secret",
                      region_name="us-east-1")
    s3.create_bucket(Bucket="lake")
    yield endpoint, s3
    server.stop()


@pytest.fixture(scope="module")
def spark():
    """A local[2] session for the module (stopped after it)."""
    import os

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = local_session("local[2]", "gravityml-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def s3_lake(s3_store, tmp_path_factory):
    """A catalog whose Spark site `lake` (local[2], priced by its executor) has the moto store."""
    endpoint, _ = s3_store
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            mp.delenv(name, raising=False)  # only the site's storage: names the store
        mp.setenv("LAKE_KEY", "lake-key")
        mp.setenv("LAKE_SECRET", "lake-secret")
        site = {"kind": "on_prem", "jurisdiction": "DE",
                "executor": {"spark": {"master": "local[2]",
                                       "executors": {"count": 1, "cores": 2, "memory_gb": 1, "hourly_usd": 0.1}}},
                "storage": {"endpoint_url": endpoint, "region": "us-east-1", "access_key_env": "LAKE_KEY",
                            "secret_key_env": "LAKE_SECRET"}}
        catalog = tmp_path_factory.mktemp("lake") / "gravityml.yaml"
        catalog.write_text(yaml.safe_dump({"include_local": False, "sites": {"lake": site}, "datasets": {
            "events": {"uri": "s3://lake/events/", "site": "lake", "size_gb": 0.001, "tags": ["lake"]}},
            "policies": [{"name": "lake-stays", "tags": ["lake"], "may_copy": False}]}))
        yield catalog
