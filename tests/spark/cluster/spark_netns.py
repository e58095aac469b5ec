"""A standalone Spark master and one worker on 127.0.0.1, a Spark site on it (run by test_spark_cluster.py).

Run inside a private network namespace (``unshare -n``; loopback is the only interface), started from
pyspark's bundled ``spark-class`` under ``setsid`` and stopped by process group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyspark
import pytest
import yaml

from gravityml.errors import ExecutorError
from gravityml.execution import run_job
from gravityml.tracking import Workspace

SPARK_HOME = Path(pyspark.__file__).parent
pytestmark = pytest.mark.skipif(os.environ.get("GRAVITYML_NETNS") != "1", reason="run by test_spark_cluster.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spark")
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_MASTER_HOST": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable, "SPARK_WORKER_DIR": str(tmp / "work"), "SPARK_LOG_DIR": str(tmp)}
    port = _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    master = _start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                     "--webui-port", str(_free_port())], tmp / "master.log", env)
    worker = _start(["org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1", "--cores", "2",
                     "--memory", "1g", "--webui-port", str(_free_port())], tmp / "worker.log", env)
    try:
        deadline = time.monotonic() + 90
        while "Registering worker" not in (tmp / "master.log").read_text():
            assert master.poll() is None and worker.poll() is None, (tmp / "master.log").read_text()[-2000:]
            assert time.monotonic() < deadline, (tmp / "master.log").read_text()[-2000:]
            time.sleep(0.3)
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        yield master_url, tmp
    finally:
        _stop(worker)
        _stop(master)


def _site(master: str) -> dict:
    return {"kind": "on_prem", "jurisdiction": "DE", "executor": {"spark": {"master": master, "conf": {
        "spark.sql.shuffle.partitions": "2", "spark.executor.memory": "512m", "spark.executor.cores": "2"}}},
        "connect_timeout_s": 20,
        "offers": [{"name": "workers", "accelerator": "cpu", "per_node": 2,
                    "owned": {"purchase_usd": 1000, "power_kw": 0.1}}]}


def _catalog(tmp: Path, master: str, data: Path) -> Path:
    doc = {"include_local": False, "sites": {"lake": _site(master)},
           "datasets": {"events": {"uri": str(data), "site": "lake", "tags": ["lake"]}},
           "policies": [{"name": "stays", "tags": ["lake"], "may_copy": False}]}
    path = tmp / "gravityml.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_job_on_the_spark_site_trains_there_and_its_lineage_names_the_master(cluster, tmp_path):
    master, _ = cluster
    rng = np.random.default_rng(0)
    n = 600
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "blue"], size=n)
    rows = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour,
                         "label": np.where(x1 + x2 + (colour == "red") > 0.5, "yes", "no")})
    data = tmp_path / "events.parquet"
    rows.to_parquet(data)
    catalog = _catalog(tmp_path, master, data)
    ws = Workspace.current(tmp_path / "ws").ensure()
    spec = {"name": "lake-rf", "task": "supervised", "model": {"type": "spark_random_forest", "params": {"numTrees": 5, "maxDepth": 3}},
            "data": {"source": "events", "target": "label"}, "compute": {"accelerator": "cpu"}}
    logs: list[str] = []
    started = time.monotonic()
    result = run_job(spec, workspace=ws, catalog=catalog, on_log=logs.append)
    print(f"trained on the cluster in {time.monotonic() - started:.1f} s")
    assert result.metrics["test/accuracy"] > 0.8, result.metrics
    version = ws.client.get_model_version("lake-rf", str(result.version))
    tags = version.tags
    assert tags["gravityml.site"] == "lake" and tags["gravityml.executor"] == "spark"
    assert tags["gravityml.cluster"] == master and tags["gravityml.spark_master"] == master
    assert tags["gravityml.spark_app_id"].startswith("app-")  # a standalone application, not local-...
    assert tags["gravityml.spark_executor_hosts"] == "127.0.0.1"
    assert tags["gravityml.data_uri"] == str(data) and len(tags["gravityml.data_fingerprint"]) == 64
    assert any(tags["gravityml.spark_app_id"] in line for line in logs)
    from gravityml.models import load_model

    local = ws.client.download_artifacts(result.run_id, "model", str(tmp_path / "dl"))
    out = load_model(local).predict(rows.drop(columns="label").head(5))
    assert list(out.columns) == ["prediction", "confidence"] and len(out) == 5


def test_a_site_whose_master_is_unreachable_fails_with_one_line(cluster, tmp_path):
    data = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1.0, 2.0], "y": ["p", "q"]}).to_parquet(data)
    catalog = _catalog(tmp_path, f"spark://127.0.0.1:{_free_port()}", data)
    spec = {"name": "nowhere", "task": "supervised", "model": {"type": "spark_logistic_regression"},
            "data": {"source": "events", "target": "y"}}
    started = time.monotonic()
    with pytest.raises(ExecutorError, match=r"site 'lake': cannot reach its Spark master 'spark://127\.0\.0\.1:\d+'") as info:
        run_job(spec, workspace=Workspace.current(tmp_path / "ws").ensure(), catalog=catalog)
    assert "\n" not in str(info.value) and time.monotonic() - started < 20
