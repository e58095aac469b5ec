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
from types import SimpleNamespace

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


def _events(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "blue"], size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour,
                         "label": np.where(x1 + x2 + (colour == "red") > 0.5, "yes", "no")})


@pytest.fixture(scope="module")
def site_session(cluster, tmp_path_factory):
    """One Spark application on the site for the module: train and predict use this process's open session."""
    from gravityml.data import load_catalog
    from gravityml.execution._spark import open_session

    master, _ = cluster
    site = _site(master)
    catalog = tmp_path_factory.mktemp("session") / "gravityml.yaml"
    catalog.write_text(yaml.safe_dump({"include_local": False, "sites": {"lake": site}}))
    session = open_session("lake", load_catalog(catalog).sites["lake"], "gravityml-site-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def lake(cluster, site_session, tmp_path_factory):
    """A random forest trained on the cluster from a local Parquet file and registered (shared by the tests)."""
    master, _ = cluster
    tmp = tmp_path_factory.mktemp("lake")
    rows = _events(600, 0)
    data = tmp / "events.parquet"
    rows.to_parquet(data)
    catalog = _catalog(tmp, master, data)
    ws = Workspace.current(tmp / "ws").ensure()
    spec = {"name": "lake-rf", "task": "supervised", "model": {"type": "spark_random_forest", "params": {"numTrees": 5, "maxDepth": 3}},
            "data": {"source": "events", "target": "label"}, "compute": {"accelerator": "cpu"}}
    logs: list[str] = []
    started = time.monotonic()
    result = run_job(spec, workspace=ws, catalog=catalog, on_log=logs.append)
    print(f"trained on the cluster in {time.monotonic() - started:.1f} s")
    folder = ws.client.download_artifacts(result.run_id, "model", str(tmp / "model"))
    return SimpleNamespace(master=master, tmp=tmp, rows=rows, data=data, catalog=catalog, ws=ws, result=result,
                           logs=logs, folder=folder)


def test_a_job_on_the_spark_site_trains_there_and_its_lineage_names_the_master(lake):
    master, rows, data, ws, result, logs = lake.master, lake.rows, lake.data, lake.ws, lake.result, lake.logs
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

    out = load_model(lake.folder).predict(rows.drop(columns="label").head(5))
    assert list(out.columns) == ["prediction", "confidence"] and len(out) == 5


def _input_folder(folder: Path, parts: int, rows: int, seed: int) -> pd.DataFrame:
    """``parts`` Parquet files of ``rows`` new rows each (an ``id`` column, no label); all the rows."""
    frame = _events(parts * rows, seed).drop(columns="label")
    frame.insert(0, "id", np.arange(len(frame)))
    folder.mkdir()
    for i in range(parts):
        frame.iloc[i * rows:(i + 1) * rows].to_parquet(folder / f"part{i}.parquet", index=False)
    return frame


def _published(out: Path, rows: int) -> pd.DataFrame:
    """The scored rows, after checking the folder holds Parquet files and _SUCCESS (its summary) only."""
    import json

    names = sorted(p.name for p in out.iterdir())
    assert "_SUCCESS" in names and all(n.endswith(".parquet") for n in names if n != "_SUCCESS"), names
    summary = json.loads((out / "_SUCCESS").read_text())
    assert summary["rows"] == rows and summary["executor_hosts"] == ["127.0.0.1"], summary
    assert summary["spark_app_id"].startswith("app-")
    got = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    assert got["id"].tolist() == list(range(rows))  # every row once
    return got


def _same_scores(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> None:
    assert got["prediction"].astype(str).tolist() == want["prediction"].astype(str).tolist()
    for column in columns:
        np.testing.assert_allclose(got[column].to_numpy(float), want[column].to_numpy(float), rtol=0, atol=1e-9)


def test_predict_on_the_spark_site_with_the_pipeline_scores_every_row_once_as_predict_does(lake, tmp_path, cli):
    """The CLI's dispatch: a spark_* model scored natively by the cluster, the same columns as `gravityml predict`."""
    from gravityml.inference import load, score_frame

    folder = lake.folder
    frame = _input_folder(tmp_path / "in", 3, 100, seed=5)
    started = time.monotonic()
    code, out, err = cli("predict", folder, str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--site", "lake",
                         "--catalog", str(lake.catalog), "--proba")
    print(f"scored on the cluster (pipeline) in {time.monotonic() - started:.1f} s")
    assert code == 0, err
    assert "scored 300 rows of 3 files" in out and "pipeline" in out and "app-" in out, out
    got = _published(tmp_path / "out", 300)
    assert list(got.columns) == ["id", "x1", "x2", "colour", "prediction", "confidence", "proba_no", "proba_yes"]
    want = score_frame(load(folder), frame, proba=True)  # `gravityml predict`'s code (SparkModel, this session)
    _same_scores(got, want, ["confidence", "proba_no", "proba_yes"])
    pd.testing.assert_frame_equal(got[["id", "x1", "x2", "colour"]], frame, check_dtype=False)


def test_any_other_model_scores_with_mapinpandas_and_a_bad_row_publishes_nothing(lake, tmp_path):
    """A scikit-learn model: each executor's Python workers load it once; a bad row names its file and row."""
    from gravityml.data import local_catalog
    from gravityml.errors import SchemaError
    from gravityml.execution._sparkscore import predict_on_spark_site
    from gravityml.inference import load, score_frame

    train = tmp_path / "train.parquet"
    lake.rows.to_parquet(train)
    ws = Workspace.current(tmp_path / "skws").ensure()
    spec = {"name": "sk", "task": "supervised", "model": {"type": "logistic_regression"},
            "data": {"source": str(train), "target": "label"}, "compute": {"accelerator": "cpu"}}
    ref = str(run_job(spec, workspace=ws, catalog=local_catalog()).model_ref)
    frame = _input_folder(tmp_path / "in", 2, 150, seed=6)
    started = time.monotonic()
    result = predict_on_spark_site(ref, str(tmp_path / "in"), str(tmp_path / "out"), site="lake",
                                   catalog=lake.catalog, workspace=ws)
    print(f"scored on the cluster (pandas) in {time.monotonic() - started:.1f} s")
    assert result.engine == "pandas" and result.rows == 300 and result.model_ref == ref
    got = _published(tmp_path / "out", 300)
    _same_scores(got, score_frame(load(ref, workspace=ws), frame), ["confidence"])

    bad = _input_folder(tmp_path / "bad", 3, 20, seed=7)
    part = bad.iloc[20:40].copy()
    part.iloc[6, part.columns.get_loc("colour")] = "purple"  # row 7 of part1.parquet
    part.to_parquet(tmp_path / "bad" / "part1.parquet", index=False)
    for model in (ref, lake.folder):
        with pytest.raises(SchemaError, match=r"published nothing: input '.*/bad/part1\.parquet': column 'colour', "
                           r"row 7: category 'purple' was not seen in training") as info:
            predict_on_spark_site(model, str(tmp_path / "bad"), str(tmp_path / "bad-out"), site="lake",
                                  catalog=lake.catalog, workspace=ws)
        assert "\n" not in str(info.value) and not (tmp_path / "bad-out").exists()  # no _SUCCESS, no _tmp- folder


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
