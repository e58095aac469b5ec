"""SIGTERM under keep-alive load: readiness turns 503 first, every client is told to go, none loses a request."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
from tests.inference.conftest import Server

CLIENTS = 64
BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_sigterm_under_64_keepalive_clients_loses_no_request(trained: Path) -> None:
    server = Server(trained, "iris", "--drain-seconds", "4")
    answered: list[int] = []
    told_to_close: list[int] = []
    lost: list[str] = []
    connected = threading.Barrier(CLIENTS + 1, timeout=120)
    lock = threading.Lock()

    def client(i: int) -> None:
        first = True
        with httpx.Client(base_url=server.url, timeout=60) as http:  # one keep-alive connection each
            while True:
                try:
                    response = http.post("/v2/models/iris/infer", json=BODY)
                except httpx.TransportError as exc:  # sent, and no answer came back: a lost request
                    with lock:
                        lost.append(f"client {i}: {exc!r}")
                    break
                with lock:
                    answered.append(response.status_code)
                if first:
                    first = False
                    connected.wait()
                if response.headers.get("connection") == "close":
                    with lock:
                        told_to_close.append(i)
                    break

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        connected.wait()  # every client holds an open keep-alive connection and keeps sending
        time.sleep(0.3)
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
        server.proc.send_signal(signal.SIGTERM)
        readiness: list[int] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and 503 not in readiness:
            readiness.append(httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code)
            time.sleep(0.05)
        for t in threads:
            t.join(60)
        code = server.proc.wait(60)
    finally:
        server.stop()
    assert lost == []
    assert set(answered) == {200} and len(answered) > CLIENTS
    assert sorted(told_to_close) == list(range(CLIENTS))  # each learnt from its answer that the server is going
    assert 503 in readiness  # readiness turned 503 while the port still answered
    assert code in (0, -15)
    assert "draining for 4 s" in server.output()
