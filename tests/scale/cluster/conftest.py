"""One real two-node Ray cluster for the scale-out tests, with an MLflow server and an S3 store (moto).

Collected only inside a private network namespace (``tests/scale/test_scale_clusters.py`` starts it
and sets GRAVITYML_NETNS=1): every server binds 127.0.0.1 on fixed ports, free because the
namespace is new. The cluster is a head plus ONE worker node joined to it (``ray start --address``),
two raylets with 2 CPUs each, so work truly spreads over two nodes. Every process starts in its own
session (setsid) and is killed by process group; whatever is left in the namespace at the end was
started by these tests (Ray's workers and job drivers) and is killed by PID too.

Fixtures: ``scale_cluster`` (session: the cluster, catalog and servers, a :class:`ScaleCluster`) and
``scale_env`` (per test: a fresh workspace plus the site's store keys in the environment).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from tests._netns import kill_groups, kill_rest_of_namespace

if os.environ.get("GRAVITYML_NETNS") != "1":  # pragma: no cover - collected only when run by test_scale_clusters.py
    collect_ignore_glob = ["*.py"]

BIN = Path(sys.executable).parent
MLFLOW_PORT, S3_PORT = 5100, 5101
GCS_PORT, CLIENT_PORT, DASHBOARD_PORT = 6479, 24601, 8365
# Client server ports stay outside 23000-24000, where the head's Ray Client proxy starts its
# per-connection servers (ray/util/client/server/proxier.py: MIN/MAX_SPECIFIC_SERVER_PORT).
NODES = {
    # name: (dashboard agent port, node manager port, object manager port, runtime env agent port,
    #        metrics export port, worker port range)
    "head": (52465, 25001, 25002, 25003, 25004, (21000, 21499)),
    "worker": (52466, 25011, 25012, 25013, 25014, (22000, 22499)),
}
SITE = "ray-site"
BUCKETS = ("scale-data", "scale-models", "scale-train")
KEYS = {"SCALE_S3_KEY": "testing", "SCALE_S3_SECRET": "testing"}
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class ScaleCluster:
    """What the scale-out tests run against."""

    root: Path  # a temporary folder of the session
    catalog: Path  # gravityml.yaml: one Ray site (SITE) on this cluster, its store on moto
    tracking_uri: str  # the MLflow server (registry too), http://127.0.0.1:5100
    s3_endpoint: str  # the site's S3 store (moto), buckets BUCKETS
    dashboard: str  # the head's job server, http://127.0.0.1:8365 (the site's executor)
    gcs_address: str  # 127.0.0.1:6479, for ray.init(address=...) from a test
    site: str = SITE
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def s3(self):  # type: ignore[no-untyped-def]
        """A boto3 client on the site's store."""
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def registry(self):  # type: ignore[no-untyped-def]
        """An MLflow client on the shared tracking server."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def job(self, name: str, spec: dict) -> Path:
        """Write ``spec`` (a job spec mapping) next to the catalog; its path."""
        path = self.catalog.parent / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A server in its own session (setsid), so its whole process group can be stopped."""
    out = log.open("wb")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            start_new_session=True)


def _wait(check, what: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} did not come up in {seconds} s: {last}")


def _port_open(port: int) -> bool:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return True


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5):
        return True


def _two_alive_nodes() -> bool:
    import json

    with urllib.request.urlopen(f"http://127.0.0.1:{DASHBOARD_PORT}/nodes?view=summary", timeout=5) as response:
        body = json.loads(response.read())
    nodes = body["data"]["summary"]
    return sum(1 for n in nodes if n.get("raylet", {}).get("state") == "ALIVE") >= 2


def _ray_node(name: str, temp_dir: str) -> list[str]:
    agent, manager, objects, runtime_env, metrics, (low, high) = NODES[name]
    common = [
        "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--object-store-memory", "150000000",
        "--dashboard-agent-listen-port", str(agent), "--node-manager-port", str(manager),
        "--object-manager-port", str(objects), "--runtime-env-agent-port", str(runtime_env),
        "--metrics-export-port", str(metrics), "--min-worker-port", str(low), "--max-worker-port", str(high),
        "--disable-usage-stats",
    ]
    if name == "head":
        return [str(BIN / "ray"), "start", "--head", "--port", str(GCS_PORT),
                "--ray-client-server-port", str(CLIENT_PORT), "--dashboard-host", "127.0.0.1",
                "--dashboard-port", str(DASHBOARD_PORT), "--include-dashboard", "true",
                "--temp-dir", temp_dir, *common]
    return [str(BIN / "ray"), "start", "--address", f"127.0.0.1:{GCS_PORT}", *common]


def _catalog(root: Path) -> dict:
    return {
        "tracking_uri": f"http://127.0.0.1:{MLFLOW_PORT}",
        "include_local": False,  # the test process is not at the site
        "sites": {SITE: {
            "kind": "on_prem", "jurisdiction": "DE", "certifications": ["ISO27001"],
            "executor": f"http://127.0.0.1:{DASHBOARD_PORT}", "python": sys.executable,
            "workspace": str(root / "site-workspace"), "connect_timeout_s": 30,
            "storage": {"endpoint_url": f"http://127.0.0.1:{S3_PORT}", "region": "us-east-1",
                        "access_key_env": "SCALE_S3_KEY", "secret_key_env": "SCALE_S3_SECRET"},
            "offers": [{"name": "cpu-4", "accelerator": "cpu", "per_node": 4,
                        "owned": {"purchase_usd": 4380.0, "lifetime_years": 1, "utilisation": 0.5,
                                  "power_kw": 0.0}}],
        }},
        "datasets": {},
    }


@pytest.fixture(scope="session")
def scale_cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ScaleCluster]:
    root = tmp_path_factory.mktemp("scale")
    procs: dict[str, subprocess.Popen] = {}
    temp_dir = f"/tmp/gml-scale-ray-{os.getpid()}"
    # RAY_AUTH_MODE explicit: unset, Ray 2.60 turns token auth on for a head when ~/.ray/auth_token exists,
    # which any local ray.init() on this machine writes (the harness then reads 401 from the dashboard).
    # RAY_TRAIN_HEALTH_CHECK_INTERVAL_S: Ray Train's controller collects the workers' reports when it polls
    # them, every 2 s by default, and a worker's report waits for that (its result queue holds one): an
    # epoch of the digits network took 2 s, almost all of it waiting (Ray 2.60, worker.py: Queue(maxsize=1)).
    ray_env = {**CREDS, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0",
               "RAY_AUTH_MODE": "disabled", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}
    try:
        procs["head"] = _start(_ray_node("head", temp_dir), root / "ray-head.log", ray_env)
        procs["s3"] = _start([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(S3_PORT)], root / "s3.log")
        procs["mlflow"] = _start([
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(MLFLOW_PORT), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'registry.db'}", "--serve-artifacts",
            "--artifacts-destination", str(root / "registry-artifacts")], root / "mlflow.log")
        # The tests' template MLflow store (tests/conftest.py: its migrations take seconds) is made while
        # the servers start, not after them.
        request.getfixturevalue("_empty_store")
        # The worker joins as soon as the head's GCS listens, not once the head's dashboard is up: the two
        # nodes start side by side (the worker retries its GCS connection, ~2 min with the variable below).
        _wait(lambda: _port_open(GCS_PORT), "the Ray head's GCS", 120)
        procs["worker"] = _start(_ray_node("worker", temp_dir), root / "ray-worker.log",
                                 {**ray_env, "RAY_NUM_REDIS_GET_RETRIES": "120"})  # ~2 min for a slow head
        _wait(lambda: _http_ok(f"http://127.0.0.1:{S3_PORT}/"), "moto", 60)
        cluster = ScaleCluster(root=root, catalog=root / "jobs" / "gravityml.yaml",
                               tracking_uri=f"http://127.0.0.1:{MLFLOW_PORT}",
                               s3_endpoint=f"http://127.0.0.1:{S3_PORT}",
                               dashboard=f"http://127.0.0.1:{DASHBOARD_PORT}",
                               gcs_address=f"127.0.0.1:{GCS_PORT}", processes=procs)
        s3 = cluster.s3()
        for bucket in BUCKETS:
            s3.create_bucket(Bucket=bucket)
        cluster.catalog.parent.mkdir(parents=True)
        cluster.catalog.write_text(yaml.safe_dump(_catalog(root)))
        _wait(_two_alive_nodes, "the Ray worker node", 120)
        _wait(lambda: _http_ok(f"http://127.0.0.1:{MLFLOW_PORT}/health"), "the MLflow server", 120)
        yield cluster
    finally:
        kill_groups(list(procs.values()))
        kill_rest_of_namespace()


@pytest.fixture()
def scale_env(scale_cluster: ScaleCluster, workspace, monkeypatch: pytest.MonkeyPatch) -> ScaleCluster:  # type: ignore[no-untyped-def]
    """The cluster, with a fresh local workspace and the site's store keys set for the code under test."""
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    return scale_cluster
