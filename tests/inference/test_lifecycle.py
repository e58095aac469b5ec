"""A server's life: served from an ONNX export, reloaded under traffic, stopped gracefully."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from tests.inference.conftest import ADMIN_TOKEN, Server, workspace_env

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def flower(trained: Path) -> Iterator[Server]:
    """``flower`` = iris registered again under a name of its own, served with --runtime onnx."""
    from gravityml.tracking import Workspace, register, resolve

    with workspace_env(trained):
        ws = Workspace.current(trained)
        iris = resolve(ws, "iris/1")
        register(ws, "flower", run_id=iris.run_id, source=iris.source)
    srv = Server(trained, "flower", "--runtime", "onnx", "--max-delay-ms", "400", "--admin-token", ADMIN_TOKEN)
    yield srv
    srv.stop()


def infer(server: Server, rows: np.ndarray, timeout: float = 30, model: str = "flower") -> httpx.Response:
    body = {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}]}
    return httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=timeout)


def test_onnx_runtime_answers_like_the_native_model(flower: Server, trained: Path) -> None:
    from gravityml.inference import load

    meta = httpx.get(f"{flower.url}/v2/models/flower").json()
    assert meta["parameters"]["runtime"] == "onnx" and meta["platform"] == "gravityml_onnx"
    rows = load_iris().data[::7]
    response = infer(flower, rows)
    assert response.status_code == 200
    out = {o["name"]: o["data"] for o in response.json()["outputs"]}
    with workspace_env(trained):
        native = load("iris/1").predict(rows)
    assert out["prediction"] == native["prediction"].tolist()
    np.testing.assert_allclose(out["confidence"], native["confidence"], atol=1e-4)


def test_reload_serves_the_new_version_without_dropping_requests(flower: Server, trained: Path) -> None:
    from gravityml.tracking import Workspace, register, resolve

    rows = load_iris().data[:2]
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            response = infer(flower, rows)
            answers.append((response.status_code, response.json().get("model_version", "")))

    with workspace_env(trained):
        ws = Workspace.current(trained)
        v1 = resolve(ws, "flower/1")
        # Registering is idempotent per run: version 2 comes from a run of its own (same artefacts).
        rerun = ws.client.create_run(ws.client.get_run(v1.run_id).info.experiment_id)
        with tempfile.TemporaryDirectory() as tmp:  # the job spec the ONNX export reads its held-out rows from
            ws.client.log_artifact(rerun.info.run_id, ws.client.download_artifacts(v1.run_id, "job.yaml", tmp))
        register(ws, "flower", run_id=rerun.info.run_id, source=v1.source)  # version 2
    clients = [threading.Thread(target=traffic) for _ in range(4)]
    for c in clients:
        c.start()
    time.sleep(1.0)
    loaded = httpx.post(f"{flower.url}/v2/repository/models/flower/load", timeout=120, headers=ADMIN)
    time.sleep(1.0)
    stop.set()
    for c in clients:
        c.join()
    assert loaded.status_code == 200 and loaded.json()["version"] == "2"
    assert {code for code, _ in answers} == {200}
    versions = [v for _, v in answers]
    assert versions[0] == "1" and versions[-1] == "2"
    index = httpx.post(f"{flower.url}/v2/repository/index").json()
    assert [(m["name"], m["version"]) for m in index] == [("flower", "2")]
    assert httpx.get(f"{flower.url}/v2/models/flower/versions/1").status_code == 404
    bad = httpx.post(f"{flower.url}/v2/repository/models/flower/load", json={"parameters": {"ref": "iris/1"}},
                     headers=ADMIN)
    assert bad.status_code == 400 and "not 'flower'" in bad.json()["error"]


def pending(server: Server, model: str) -> float:
    """The server's own count of requests queued or running for ``model`` (its /metrics gauge)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("gravityml_inference_pending_requests{") and f'model="{model}"' in line)


def traffic(server: Server, model: str, clients: int, stop: threading.Event,
            answers: list[tuple[float, int]]) -> list[threading.Thread]:
    """``clients`` threads sending one-row requests back to back until ``stop``: (finished at, status)."""
    def loop() -> None:
        while not stop.is_set():
            try:
                response = infer(server, load_iris().data[:1], model=model)
            except httpx.ConnectError:  # the server stopped accepting: nothing was sent
                return
            answers.append((time.monotonic(), response.status_code))

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    return threads


def test_metrics_count_the_requests_pending(flower: Server) -> None:
    # A lone request runs at once (never held for the batch delay): under 8 clients, requests wait
    # for each other, and gathered ones are held up to --max-delay-ms (400 ms).
    assert pending(flower, "flower") == 0
    stop, answers = threading.Event(), []
    clients = traffic(flower, "flower", 8, stop, answers)
    seen = 0.0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not seen:
        seen = pending(flower, "flower")
    stop.set()
    for c in clients:
        c.join()
    assert 1 <= seen <= 8
    assert pending(flower, "flower") == 0
    assert answers and {code for _, code in answers} == {200}


def test_shutdown_finishes_the_requests_in_flight(trained: Path) -> None:
    # Its own server, whose batcher holds gathered requests up to 3 s: SIGTERM comes once the server
    # counts two pending (one gathering, so held), which no sleep in the client can promise on a loaded machine.
    srv = Server(trained, "iris", "--max-delay-ms", "3000")  # iris: registered by `trained` on every worker
    stop, answers = threading.Event(), []
    try:
        clients = traffic(srv, "iris", 8, stop, answers)
        deadline = time.monotonic() + 20
        while pending(srv, "iris") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        signalled = time.monotonic()
        stop.set()
        code = srv.stop()
        for c in clients:
            c.join()
    finally:
        stop.set()
        srv.stop()
    assert answers and {status for _, status in answers} == {200}
    assert any(at > signalled for at, _ in answers), "no request was in flight at SIGTERM"
    # uvicorn re-raises SIGTERM after its clean shutdown, so the exit status is the signal's.
    assert code in (0, -15)
    assert "Finished server process" in srv.output()
