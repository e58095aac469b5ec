"""Two sites, two real Ray clusters, one MLflow registry, one S3 store per site (moto), all on loopback.

Run only inside a private network namespace (``tests/execution/test_clusters.py`` starts it): every
server here binds 127.0.0.1 on fixed ports, which are free because the namespace is new. Site B's
cluster runs with Ray's token authentication on. Every process is started in its own session and
stopped by process group; whatever is left in this namespace at the end is ours and is killed too.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests._netns import kill_groups, kill_rest_of_namespace

if os.environ.get("GRAVITYML_NETNS") != "1":  # pragma: no cover - collected only when run by test_clusters.py
    pytest.skip("runs inside a private network namespace, started by tests/execution/test_clusters.py",
                allow_module_level=True)

BIN = Path(sys.executable).parent
MLFLOW_PORT, S3_A, S3_B = 5000, 5001, 5002
CLIENT_SERVER_START_S = 150  # what a head's Ray Client proxier waits for a per-client server
TOKEN = secrets.token_hex(16)
HEADS = {
    # name: (GCS port, client server port, dashboard port, agent port, worker port range)
    # Client server ports stay outside 23000-24000, where each head's Ray Client proxy starts the
    # per-connection servers (ray/util/client/server/proxier.py: MIN/MAX_SPECIFIC_SERVER_PORT).
    "a": (6379, 24501, 8265, 52365, (21000, 21499)),
    "b": (6390, 24502, 8266, 52366, (22000, 22499)),
}
USER_CODE = '''
import glob
import os
import time

from sklearn.linear_model import LogisticRegression


def wait_for_gate(gate, where):
    """Block until the test creates ``gate``: the job is provably mid-run while the test acts."""
    print(f"gate: {where} waits for {gate}", flush=True)
    while not os.path.exists(gate):
        time.sleep(0.05)
    print(f"gate: {where} passed", flush=True)


class SlowClassifier(LogisticRegression):
    """A user's own estimator whose fit takes a while (so a test can stop or kill it mid-run)."""

    def __init__(self, seconds=0.0, C=1.0, max_iter=200):
        super().__init__(C=C, max_iter=max_iter)
        self.seconds = seconds

    def fit(self, X, y, **kwargs):
        time.sleep(self.seconds)
        return super().fit(X, y, **kwargs)


class GatedClassifier(LogisticRegression):
    """Prints a line, then fits only once the test opens its gate (a file)."""

    def __init__(self, gate="", C=1.0, max_iter=200):
        super().__init__(C=C, max_iter=max_iter)
        self.gate = gate

    def fit(self, X, y, **kwargs):
        if self.gate:
            wait_for_gate(self.gate, "fit")
        return super().fit(X, y, **kwargs)


def gated_net(inputs, outputs, gate="", checkpoints=""):
    """A small torch network whose next epoch, once a checkpoint exists under ``checkpoints``, waits for the gate."""
    import torch
    from torch import nn

    class GatedNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(inputs.n_features, 8), nn.ReLU(), nn.Linear(8, outputs.n_outputs))

        def train(self, mode=True):
            if mode and gate and glob.glob(os.path.join(checkpoints, "*", "checkpoint.pt")):
                wait_for_gate(gate, "an epoch after the first checkpoint")
            return super().train(mode)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    return GatedNet()
'''


@dataclass
class Sites:
    root: Path
    catalog: Path
    tracking_uri: str
    processes: list[subprocess.Popen]
    heads: dict[str, subprocess.Popen]
    #: Each site's store accepts only its own keys (moto with IAM authentication on): (key id, secret).
    keys: dict[str, tuple[str, str]]

    def gate(self, name: str) -> Path:
        return self.root / "gates" / name

    def address(self, name: str) -> str:
        return f"http://127.0.0.1:{HEADS[name][2]}"


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A server in its own session (setsid), so its whole process group can be stopped."""
    out = log.open("wb")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            start_new_session=True)


def _wait_http(url: str, seconds: float, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5):
                return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up in {seconds} s: {last}")


#: moto answers this many requests unauthenticated (the three that make a site's user and its key), then
#: checks every request's signature and key like IAM does (moto's INITIAL_NO_AUTH_ACTION_COUNT).
NO_AUTH_SETUP_CALLS = 3


def _wait_port(port: int, seconds: float) -> None:
    """A TCP connect (not a request: moto counts requests against NO_AUTH_SETUP_CALLS)."""
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"port {port} did not open in {seconds} s")


def _site_keys(endpoint: str) -> tuple[str, str]:
    """A user with its own access key on one site's store: the only key that store accepts."""
    import json

    import boto3

    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup",
                       aws_secret_access_key="setup")
    iam.create_user(UserName="site")
    iam.put_user_policy(UserName="site", PolicyName="store", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="site")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def _s3(endpoint: str, keys: tuple[str, str]):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=keys[0],
                        aws_secret_access_key=keys[1])


def _put(endpoint: str, keys: tuple[str, str], bucket: str, key: str, body: bytes) -> None:
    s3 = _s3(endpoint, keys)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def _keys(endpoint: str, keys: tuple[str, str]) -> dict[str, list[str]]:
    s3 = _s3(endpoint, keys)
    out = {}
    for bucket in s3.list_buckets().get("Buckets", []):
        listed = s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", [])
        out[bucket["Name"]] = [o["Key"] for o in listed]
    return out


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Sites]:
    from sklearn.datasets import load_iris

    root = tmp_path_factory.mktemp("sites")
    procs: list[subprocess.Popen] = []
    heads: dict[str, subprocess.Popen] = {}
    creds = {"AWS_DEFAULT_REGION": "us-east-1"}  # no keys: a job reads and writes with its site's, or fails
    try:
        for port in (S3_A, S3_B):
            procs.append(_start([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], root / f"s3-{port}.log",
                                {"INITIAL_NO_AUTH_ACTION_COUNT": str(NO_AUTH_SETUP_CALLS)}))
        procs.append(_start([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(MLFLOW_PORT),
                             "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'registry.db'}",
                             "--serve-artifacts", "--artifacts-destination", str(root / "registry-artifacts")],
                            root / "mlflow.log"))
        for name, (gcs, client, dash, agent, (low, high)) in HEADS.items():
            env = {**creds, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0",
                   # The Ray Client proxier gives a new per-client server 30 s to come up; a loaded 2-core
                   # machine needs longer (CI failed a ray:// connect with "Initialization failure").
                   "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": str(CLIENT_SERVER_START_S),
                   # Explicit: unset, Ray 2.60 turns token auth on when ~/.ray/auth_token exists (any local
                   # ray.init() on this machine writes one).
                   "RAY_AUTH_MODE": "disabled"}
            if name == "b":
                env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)
            heads[name] = _start([
                str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                "--port", str(gcs), "--ray-client-server-port", str(client), "--dashboard-host", "127.0.0.1",
                "--dashboard-port", str(dash), "--dashboard-agent-listen-port", str(agent),
                "--min-worker-port", str(low), "--max-worker-port", str(high), "--num-cpus", "2",
                "--object-store-memory", "100000000", "--temp-dir", f"/tmp/gml-ray-{os.getpid()}-{name}",
                "--include-dashboard", "true", "--disable-usage-stats",
            ], root / f"ray-{name}.log", env)
            procs.append(heads[name])
        # The tests' template MLflow store (tests/conftest.py: its migrations take seconds) is made while
        # the servers start, not after them.
        request.getfixturevalue("_empty_store")
        frame = load_iris(as_frame=True).frame
        keys = {}
        for name, port in (("a", S3_A), ("b", S3_B)):
            _wait_port(port, 60)
            keys[name] = _site_keys(f"http://127.0.0.1:{port}")
        _put(f"http://127.0.0.1:{S3_A}", keys["a"], "site-a-data", "flowers.csv", frame.to_csv(index=False).encode())
        _put(f"http://127.0.0.1:{S3_B}", keys["b"], "site-b-data", "cards.csv", frame.to_csv(index=False).encode())
        _put(f"http://127.0.0.1:{S3_B}", keys["b"], "site-b-models", "README", b"models trained at site B")
        (root / "gates").mkdir()
        _wait_http(f"http://127.0.0.1:{MLFLOW_PORT}/health", 120)
        _wait_http(f"http://127.0.0.1:{HEADS['a'][2]}/api/version", 120)
        _wait_http(f"http://127.0.0.1:{HEADS['b'][2]}/api/version", 120, {"Authorization": f"Bearer {TOKEN}"})
        code = root / "jobs" / "slowpkg"
        code.mkdir(parents=True)
        (code / "__init__.py").write_text(USER_CODE)
        catalog = root / "jobs" / "gravityml.yaml"
        catalog.write_text(yaml.safe_dump(_catalog(root)))
        yield Sites(root=root, catalog=catalog, tracking_uri=f"http://127.0.0.1:{MLFLOW_PORT}", processes=procs,
                    heads=heads, keys=keys)
    finally:
        kill_groups(procs)
        kill_rest_of_namespace()


def _site(name: str, jurisdiction: str, hourly: float, root: Path) -> dict:
    s3 = S3_A if name == "a" else S3_B
    return {
        "kind": "on_prem", "jurisdiction": jurisdiction, "certifications": ["ISO27001"],
        "executor": f"http://127.0.0.1:{HEADS[name][2]}", "python": sys.executable,
        "workspace": str(root / f"site-{name}-workspace"), "connect_timeout_s": 20,
        "egress_usd_per_gb": 0.05,
        "storage": {"endpoint_url": f"http://127.0.0.1:{s3}", "region": "us-east-1",
                    "access_key_env": f"SITE_{name.upper()}_KEY", "secret_key_env": f"SITE_{name.upper()}_SECRET"},
        "offers": [{"name": "cpu-2", "accelerator": "cpu", "per_node": 2,
                    "owned": {"purchase_usd": hourly * 8760 * 0.5, "lifetime_years": 1, "utilisation": 0.5,
                              "power_kw": 0.0}}],
    }


def _catalog(root: Path) -> dict:
    b = {**_site("b", "FR", 2.0, root), "auth_token_env": "SITE_B_RAY_TOKEN",
         "artifact_location": "s3://site-b-models/models"}
    return {
        "tracking_uri": f"http://127.0.0.1:{MLFLOW_PORT}",
        "include_local": False,  # this test process is at neither site
        "sites": {"site-a": _site("a", "DE", 1.0, root), "site-b": b},
        "datasets": {
            "cards": {"uri": "s3://site-b-data/cards.csv", "site": "site-b", "tags": ["regulated"]},  # size: from B's store
            "flowers": {"uri": "s3://site-a-data/flowers.csv", "site": "site-a", "size_gb": 0.001},
        },
        "policies": [{"name": "regulated-stays-home", "tags": ["regulated"], "may_copy": False,
                      "certifications": ["iso27001"]}],
    }


@pytest.fixture()
def env(sites: Sites, workspace, monkeypatch: pytest.MonkeyPatch) -> Sites:
    for site in ("a", "b"):
        monkeypatch.setenv(f"SITE_{site.upper()}_KEY", sites.keys[site][0])
        monkeypatch.setenv(f"SITE_{site.upper()}_SECRET", sites.keys[site][1])
    monkeypatch.setenv("SITE_B_RAY_TOKEN", TOKEN)
    return sites


def _job(sites: Sites, name: str, source: str, *, train: dict | None = None, **model: object) -> Path:
    spec: dict = {
        "name": name, "task": "supervised",
        "data": {"source": source, "target": "target", "split": {"test": 0.25, "seed": 3}},
        "model": model or {"type": "logistic_regression"},
        "compute": {"accelerator": "cpu"},
        "placement": {"estimate": {"hours": 0.01, "hardware": "cpu", "devices": 1}},
    }
    if train is not None:
        spec["train"] = train
    path = sites.catalog.parent / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _registry(sites: Sites):  # type: ignore[no-untyped-def]
    from gravityml.tracking import Workspace

    return Workspace(root=sites.root / "reader", tracking_uri=sites.tracking_uri, embedded=False).client


def _client(sites: Sites, name: str):  # type: ignore[no-untyped-def]
    from ray.job_submission import JobSubmissionClient

    headers = {"Authorization": f"Bearer {TOKEN}"} if name == "b" else None
    return JobSubmissionClient(sites.address(name), headers=headers)


def test_regulated_data_homed_at_b_runs_on_bs_cluster_reads_bs_store_and_registers_in_the_shared_registry(
    env: Sites,
) -> None:
    from gravityml.execution import place, run_job

    spec = _job(env, "cards", "cards")
    placed = place(spec, catalog=env.catalog)
    assert placed.candidate.site == "site-b"
    assert placed.plan.demand.size_known  # no size_gb: the size was read from site B's store
    assert 0 < placed.plan.demand.size_gb < 1e-3
    rejected_a = placed.plan.rejection_for_site("site-a")
    assert rejected_a is not None and "regulated-stays-home" in rejected_a
    logs: list[str] = []
    result = run_job(spec, catalog=env.catalog, on_log=logs.append)
    ran = result.lineage
    assert ran["site"] == "site-b" and ran["planned_site"] == "site-b" and ran["executor"] == "ray"
    assert ran["cluster"] == env.address("b")
    # The node id the job recorded is the one site B's own job server reports for its driver.
    info = _client(env, "b").get_job_info(ran["ray_job_id"])
    assert info.status == "SUCCEEDED" and ran["ray_node_id"] == info.driver_node_id
    assert ran["host"] and ran["data_uri"] == "s3://site-b-data/cards.csv"
    # Site A's cluster never saw the job.
    assert not [j for j in _client(env, "a").list_jobs() if j.submission_id == ran["ray_job_id"]]
    # Logs came back while it ran.
    assert any("ray node" in chunk for chunk in logs)
    # One registry: the version is in the shared MLflow server, with where it ran, its artefacts in B's store.
    registry = _registry(env)
    version = registry.get_model_version("cards", str(result.version))
    assert version.tags["gravityml.site"] == "site-b" and version.tags["gravityml.ray_job_id"] == ran["ray_job_id"]
    assert version.tags["gravityml.ray_node_id"] == info.driver_node_id
    assert version.source.startswith("s3://site-b-models/models/") or "site-b-models" in version.source
    run = registry.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("s3://site-b-models/models")
    stored_b = _keys(f"http://127.0.0.1:{S3_B}", env.keys["b"])
    assert any(k.endswith("MLmodel") for k in stored_b["site-b-models"])
    assert "site-b-models" not in _keys(f"http://127.0.0.1:{S3_A}", env.keys["a"])


def test_the_same_registry_takes_a_job_homed_at_a_from_as_cluster(env: Sites) -> None:
    from gravityml.execution import run_job

    result = run_job(_job(env, "flowers", "flowers"), catalog=env.catalog, on_log=lambda _: None)
    ran = result.lineage
    assert ran["site"] == "site-a" and ran["cluster"] == env.address("a")
    info = _client(env, "a").get_job_info(ran["ray_job_id"])
    assert ran["ray_node_id"] == info.driver_node_id
    assert _client(env, "b").get_job_info(_any_b_job(env)).driver_node_id != info.driver_node_id
    version = _registry(env).get_model_version("flowers", str(result.version))
    assert version.tags["gravityml.site"] == "site-a" and version.source.startswith(("mlflow-artifacts:", "models:"))
    # A Ray Client address (ray://, the client extra) reaches the same job server.
    from gravityml.execution._ray import connect

    via_client = connect(f"ray://127.0.0.1:{HEADS['a'][1]}", site="site-a", timeout_s=2 * CLIENT_SERVER_START_S)
    assert via_client.get_job_status(ran["ray_job_id"]) == "SUCCEEDED"


def _any_b_job(sites: Sites) -> str:
    jobs = [j for j in _client(sites, "b").list_jobs() if j.submission_id]
    assert jobs, "the first test ran a job on site B"
    return str(jobs[0].submission_id)


def test_regulated_data_is_refused_on_the_other_cluster_before_anything_is_submitted(env: Sites, cli) -> None:
    before = {j.submission_id for j in _client(env, "a").list_jobs()}
    code, _, err = cli("train", str(_job(env, "cards", "cards")), "--catalog", str(env.catalog), "--site", "site-a")
    assert code == 2 and "regulated-stays-home" in err and err.count("\n") == 1
    assert {j.submission_id for j in _client(env, "a").list_jobs()} == before


def test_a_cluster_without_the_token_refuses_with_one_line(env: Sites, cli, monkeypatch, tmp_path: Path) -> None:
    document = yaml.safe_load(env.catalog.read_text())
    document["sites"]["site-b"].pop("auth_token_env")  # submit to B without its token
    catalog = tmp_path / "gravityml.yaml"
    catalog.write_text(yaml.safe_dump(document))
    code, _, err = cli("train", str(_job(env, "cards", "cards")), "--catalog", str(catalog))
    assert code == 2 and err.count("\n") == 1
    assert "site 'site-b': the Ray cluster at 'http://127.0.0.1:8266' refused the connection" in err
    assert "auth_token_env" in err
    monkeypatch.delenv("SITE_B_RAY_TOKEN")
    code, _, err = cli("train", str(_job(env, "cards", "cards")), "--catalog", str(env.catalog))
    assert code == 2 and "$SITE_B_RAY_TOKEN is not set" in err


class _SilentServer:
    """Accepts connections and reads what arrives, never answers: a hung job server. ``asked`` is set
    when a request's first bytes arrive (the client under test is then waiting on its timeout)."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.asked = threading.Event()
        self.asked_at = 0.0
        self.held: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn) -> None:  # type: ignore[no-untyped-def]
        try:
            if conn.recv(1024) and not self.asked.is_set():
                self.asked_at = time.monotonic()
                self.asked.set()
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_an_unreachable_cluster_fails_within_the_connect_timeout(env: Sites, cli, tmp_path: Path) -> None:
    """The bound is measured from the moment the job server under test has the request (a signal from
    the server, not a guess at how long loading the spec and the catalog takes on a busy machine)."""
    silent = _SilentServer()
    document = yaml.safe_load(env.catalog.read_text())
    timeout_s = 2.0
    try:
        address = f"http://127.0.0.1:{silent.port}"
        document["sites"]["site-a"].update(executor=address, connect_timeout_s=timeout_s)
        catalog = tmp_path / "silent.yaml"
        catalog.write_text(yaml.safe_dump(document))
        code, _, err = cli("train", str(_job(env, "flowers", "flowers")), "--catalog", str(catalog))
        returned = time.monotonic()
        assert code == 2 and err.count("\n") == 1 and "site 'site-a'" in err and address in err
        assert f"did not answer within {timeout_s:g} s" in err
        assert silent.asked.is_set()  # the request reached the server, which never answered it
        assert returned - silent.asked_at < timeout_s + 5  # the timeout ended the wait, not an answer
    finally:
        silent.close()
    # Nothing listens: refused at once, one line naming the site and the address.
    refused = "http://127.0.0.1:8999"
    document["sites"]["site-a"].update(executor=refused, connect_timeout_s=timeout_s)
    catalog = tmp_path / "refused.yaml"
    catalog.write_text(yaml.safe_dump(document))
    code, _, err = cli("train", str(_job(env, "flowers", "flowers")), "--catalog", str(catalog))
    assert code == 2 and err.count("\n") == 1 and "site 'site-a'" in err and refused in err
    assert "cannot reach its Ray cluster" in err and "refused" in err.lower()
    from gravityml.execution._jobs import read_records
    from gravityml.tracking import Workspace

    assert not read_records(Workspace.current())  # nothing was submitted or recorded


def _wait_for(predicate, seconds: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def _submit_in_background(env: Sites, name: str, *, source: str = "flowers", catalog: Path | None = None,
                          site: str | None = None,
                          model: dict | None = None, train: dict | None = None, wait_for: str = "ray node"
                          ) -> tuple[threading.Thread, dict, list[str]]:
    """``run_job`` in a thread; returns once the job's log (streamed back to the submitter) shows ``wait_for``."""
    from gravityml.execution import run_job

    model = model or {"type": "sklearn", "entry_point": "slowpkg:SlowClassifier", "params": {"seconds": 120}}
    spec = _job(env, name, source, train=train, **model)
    outcome: dict = {}
    logs: list[str] = []

    def go() -> None:
        try:
            outcome["result"] = run_job(spec, catalog=catalog or env.catalog, site=site, on_log=logs.append)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcome["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    _wait_for(lambda: wait_for in "".join(logs) or "error" in outcome)
    assert "error" not in outcome, outcome.get("error")
    return thread, outcome, logs


def _gated(env: Sites, name: str) -> dict:
    """A user's estimator whose fit waits for the test to create ``env.gate(name)``."""
    return {"type": "sklearn", "entry_point": "slowpkg:GatedClassifier", "params": {"gate": str(env.gate(name))}}


class _Follow:
    """``gravityml jobs logs JOB --follow`` as a user runs it: its own process, its output read as it comes."""

    def __init__(self, job_id: str) -> None:
        self.proc = subprocess.Popen([str(BIN / "gravityml"), "jobs", "logs", job_id, "--follow"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: list[str] = []
        self.err = ""
        self._out = threading.Thread(target=self._read, daemon=True)
        self._out.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait(self, seconds: float = 120.0) -> int:
        code = self.proc.wait(timeout=seconds)
        self._out.join(10)
        assert self.proc.stderr is not None
        self.err = self.proc.stderr.read()
        return code

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _record(env: Sites, name: str):  # type: ignore[no-untyped-def]
    from gravityml.execution._jobs import read_records
    from gravityml.tracking import Workspace

    return [r for r in read_records(Workspace.current()) if r.model == name][-1]


def test_jobs_list_status_logs_and_stop_cancels_on_the_cluster_run_killed_nothing_registered(env: Sites, cli) -> None:
    thread, outcome, _ = _submit_in_background(env, "stopme")
    record = _record(env, "stopme")
    code, out, _ = cli("jobs", "list")
    assert code == 0 and record.job_id in out and "RUNNING" in out and "site-a" in out
    code, out, _ = cli("jobs", "status", record.job_id)
    assert code == 0 and "RUNNING" in out
    code, out, _ = cli("jobs", "logs", record.job_id)
    assert code == 0 and "ray node" in out
    code, out, err = cli("jobs", "stop", record.job_id)
    assert code == 0, err
    thread.join(60)
    assert "error" in outcome and "STOPPED" in str(outcome["error"])
    assert _client(env, "a").get_job_status(record.job_id) == "STOPPED"
    registry = _registry(env)
    assert registry.get_run(record.run_id).info.status == "KILLED"
    assert not registry.search_model_versions("name = 'stopme'")


def test_a_killed_driver_leaves_the_run_failed_with_its_last_logs_and_no_version(env: Sites) -> None:
    import re

    thread, outcome, logs = _submit_in_background(env, "killme")
    record = _record(env, "killme")
    follower = _Follow(record.job_id)  # its exit status follows the job's: FAILED -> 1
    _wait_for(lambda: "ray node" in follower.text or follower.proc.poll() is not None)
    pid = int(re.search(r"pid (\d+)", "".join(logs)).group(1))  # type: ignore[union-attr]
    os.kill(pid, signal.SIGKILL)
    thread.join(120)
    assert "error" in outcome and "FAILED" in str(outcome["error"])
    registry = _registry(env)
    run = registry.get_run(record.run_id)
    assert run.info.status == "FAILED" and "ray node" in run.data.tags["gravityml.last_logs"]
    assert not registry.search_model_versions("name = 'killme'")
    assert follower.wait() == 1, follower.err
    assert f"job {record.job_id} on site site-a ended FAILED" in follower.err


def test_a_move_reads_with_the_home_sites_keys_writes_with_its_own_and_jobs_logs_follow_streams_it_as_it_runs(
    env: Sites, cli, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A move the plan chose is read by the destination job from the home store with site A's keys; its
    model is written into B's store with B's keys (each moto store takes only its own site's key), and
    the move is metered as egress. The job waits at a gate, so `jobs logs --follow` is seen streaming
    it while it runs, then ending with it (exit 0)."""
    import json

    from botocore.exceptions import ClientError

    a_store, b_store = f"http://127.0.0.1:{S3_A}", f"http://127.0.0.1:{S3_B}"
    for endpoint, wrong, bucket, key in ((a_store, env.keys["b"], "site-a-data", "flowers.csv"),
                                         (b_store, env.keys["a"], "site-b-models", "README")):
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):
            _s3(endpoint, wrong).get_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        _s3(b_store, env.keys["a"]).put_object(Bucket="site-b-models", Key="x", Body=b"x")

    thread, outcome, _ = _submit_in_background(env, "moved", site="site-b", model=_gated(env, "moved"),
                                               wait_for="gate: fit waits")
    record = _record(env, "moved")
    follower = _Follow(record.job_id)
    # The job is held at its gate: what the follower prints now, it printed while the job ran.
    _wait_for(lambda: "gate: fit waits" in follower.text or follower.proc.poll() is not None)
    assert follower.proc.poll() is None, follower.text
    assert _client(env, "b").get_job_status(record.job_id) == "RUNNING"
    assert "gate: fit passed" not in follower.text
    env.gate("moved").touch()
    assert follower.wait() == 0, follower.err
    assert "gate: fit passed" in follower.text and "GRAVITYML_RESULT " in follower.text  # lines after the gate
    thread.join(120)
    assert "result" in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.run_id == record.run_id
    assert result.lineage["site"] == "site-b" and result.lineage["data_uri"] == "s3://site-a-data/flowers.csv"
    written = [k for k in _keys(b_store, env.keys["b"])["site-b-models"] if result.run_id in k]
    assert any(k.endswith("MLmodel") for k in written)  # written into B's store, which takes only B's keys
    ledger = env.root / "site-b-workspace" / "ledger.jsonl"  # the ledger of the site that ran it
    moves = [e for e in map(json.loads, ledger.read_text().splitlines())
             if e["kind"] == "egress" and e["run_id"] == result.run_id]
    assert len(moves) == 1 and moves[0]["status"] == "moved 0.001 GB from site-a"
    assert moves[0]["usd"] == pytest.approx(0.001 * 0.05)  # site A's egress price, as the plan priced it

    # Without site A's keys the move is refused before anything is submitted (B's keys would not do).
    before = {j.submission_id for j in _client(env, "b").list_jobs()}
    monkeypatch.delenv("SITE_A_KEY")
    code, _, err = cli("train", str(_job(env, "moved", "flowers")), "--catalog", str(env.catalog), "--site", "site-b")
    assert code == 2 and err.count("\n") == 1 and "$SITE_A_KEY is not set" in err and "site 'site-a'" in err
    assert {j.submission_id for j in _client(env, "b").list_jobs()} == before


def test_a_resubmitted_job_resumes_from_its_checkpoint_on_that_sites_storage(env: Sites) -> None:
    """The driver is killed while its job is held at a gate after its first checkpoint (not after a
    guessed number of seconds), so the kill always lands mid-run, and the pid line is already in."""
    import re

    from gravityml.execution import run_job

    checkpoints = env.root / "site-a-workspace" / "checkpoints"
    model = {"type": "torch", "entry_point": "slowpkg:gated_net",
             "params": {"gate": str(env.gate("resumable")), "checkpoints": str(checkpoints)}}
    thread, outcome, logs = _submit_in_background(
        env, "resumable", model=model, train={"epochs": 3, "batch_size": 32, "seed": 5},
        wait_for="gate: an epoch after the first checkpoint waits")
    spec = env.catalog.parent / "resumable.yaml"
    document = yaml.safe_load(spec.read_text())
    assert list(checkpoints.glob("resumable-*/checkpoint.pt"))
    pid = int(re.search(r"pid (\d+)", "".join(logs)).group(1))  # type: ignore[union-attr]
    os.kill(pid, signal.SIGKILL)
    thread.join(120)
    assert "error" in outcome and "FAILED" in str(outcome["error"])
    killed = _record(env, "resumable")
    env.gate("resumable").touch()  # the resubmitted job runs through
    resumed = run_job(spec, catalog=env.catalog, resume=True, on_log=lambda _: None)
    assert resumed.run_id == killed.run_id  # the same run goes on
    assert int(resumed.lineage["resumed_from_epoch"]) >= 1  # from the checkpoint the killed job left on site A
    assert len(_registry(env).search_model_versions("name = 'resumable'")) == 1
    assert document["train"]["epochs"] == 3


def test_a_cluster_lost_mid_run_is_one_line_the_job_shows_lost_nothing_registered_and_resume_waits_for_it(
    env: Sites, cli, tmp_path: Path,
) -> None:
    """Last in the module: it kills site B's head (nothing after it needs B)."""
    from gravityml.errors import ExecutorError
    from gravityml.execution._jobs import find_resumable, read_records
    from gravityml.tracking import Workspace

    document = yaml.safe_load(env.catalog.read_text())
    document["sites"]["site-b"]["connect_timeout_s"] = 5  # how long a silent cluster is waited out
    catalog = env.catalog.parent / "lost.yaml"
    catalog.write_text(yaml.safe_dump(document))
    thread, outcome, logs = _submit_in_background(env, "lostjob", source="cards", catalog=catalog,
                                                  model=_gated(env, "lostjob"), wait_for="gate: fit waits")
    record = _record(env, "lostjob")
    assert record.site == "site-b"
    head = env.heads["b"]
    os.killpg(head.pid, signal.SIGKILL)  # the head node goes away: GCS, raylet, dashboard, job server
    head.wait(30)
    thread.join(120)
    error = outcome.get("error")
    assert isinstance(error, ExecutorError) and "\n" not in str(error), outcome
    message = str(error)
    assert f"site 'site-b': its Ray cluster at '{env.address('b')}' went away while job {record.job_id}" in message
    assert "nothing was registered" in message and "--resume" in message
    registry = _registry(env)
    run = registry.get_run(record.run_id)
    assert run.info.status == "FAILED" and "gravityml.cluster_lost" in run.data.tags
    assert "gate: fit waits" in run.data.tags["gravityml.last_logs"]
    assert not registry.search_model_versions("name = 'lostjob'")
    code, out, _ = cli("jobs", "list")  # this workspace submitted that one job
    assert code == 0 and record.job_id in out and "lost" in out and "FAILED" in out
    # As documented: --resume picks this job up (its run did not finish), and while the cluster is down
    # it is refused with one line, submitting nothing.
    ws = Workspace.current()
    assert find_resumable(record.workspace(ws), "lostjob", "site-b") == record
    code, _, err = cli("train", str(env.catalog.parent / "lostjob.yaml"), "--catalog", str(catalog), "--resume")
    assert code == 2 and err.count("\n") == 1 and "site 'site-b': cannot reach its Ray cluster" in err
    assert len(read_records(ws)) == 1
