"""`gravityml serve --workers 2`: two processes answer on one port, /metrics adds both up, SIGTERM
stops every process, each worker writes its own prediction log files into the one folder, and
what does not combine with workers yet is refused."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from tests.inference.conftest import Server

ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def total(metrics: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name))


def spread(server: Server) -> tuple[dict[str, int], int]:
    """Requests on new connections until both workers have answered and 40 were sent: answers by
    worker PID, and how many were sent."""
    answered: dict[str, int] = {}
    sent = 0
    deadline = time.monotonic() + 30
    while (len(answered) < 2 or sent < 40) and time.monotonic() < deadline:
        response = httpx.post(f"{server.url}/v2/models/iris/infer", json=ROW, timeout=10)  # a new connection each
        sent += 1
        assert response.status_code == 200, response.text
        worker = response.headers["x-gravityml-worker"]
        answered[worker] = answered.get(worker, 0) + 1
    return answered, sent


def test_two_workers_share_the_port_and_their_metrics_and_stop_together(trained: Path) -> None:
    server = Server(trained, "iris", "--workers", "2", "--no-access-log")
    try:
        workers = children(server.proc.pid)
        assert len(workers) == 2, server.output()
        answered, sent = spread(server)
        assert {int(p) for p in answered} == workers, (answered, workers)
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert total(metrics, 'gravityml_inference_requests_total{code="200",model="iris"}') == sent
        # Gauges stay per process: one series per worker PID.
        pids = {line.split('pid="')[1].split('"')[0] for line in metrics.splitlines()
                if line.startswith("gravityml_models_loaded{")}
        assert {int(p) for p in pids} == workers
        environ = Path(f"/proc/{min(workers)}/environ").read_bytes().split(b"\0")
        folder = Path(os.fsdecode(next(kv for kv in environ if kv.startswith(b"PROMETHEUS_MULTIPROC_DIR="))[25:]))
        assert folder.is_dir()
    finally:
        code = server.stop()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), "a worker outlived SIGTERM"
    assert code in (0, -15), server.output()
    assert not folder.exists()  # the metrics folder is removed at exit


@pytest.mark.parametrize("flag", [["--grpc-port", "8099"], ["--admin-token", "x"]])
def test_what_workers_do_not_combine_with_is_refused(cli, flag: list[str]) -> None:  # noqa: ANN001
    code, _, err = cli("serve", "iris", "--workers", "2", *flag)
    assert code != 0 and "does not combine with --workers 2" in err and flag[0] in err


def test_two_workers_log_predictions_into_one_folder_that_monitor_reads_whole(trained: Path, tmp_path: Path) -> None:
    from gravityml.inference._monitor import read_recent

    logs = tmp_path / "logs"
    server = Server(trained, "iris", "--workers", "2", "--no-access-log", "--log-predictions", str(logs))
    try:
        workers = children(server.proc.pid)
        answered, sent = spread(server)
        assert {int(p) for p in answered} == workers, (answered, workers)
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        # The log's counters, one series added up over both workers.
        assert "# TYPE gravityml_prediction_log_dropped_rows_total counter" in metrics
        assert [line for line in metrics.splitlines() if line.startswith("gravityml_prediction_log_dropped_rows_total")] \
            == ["gravityml_prediction_log_dropped_rows_total 0.0"]
    finally:
        code = server.stop()
    assert code in (0, -15), server.output()
    files = sorted(logs.glob("predictions-*.parquet"))
    assert {f.name.split("-")[2] for f in files} == {"w0", "w1"}, files  # each worker its own files
    assert len(read_recent(logs)) == sent  # what monitor --logs reads: every answered row, once
