"""Serving benchmark: `gravityml serve` against `mlflow models serve` on the same registered model.

Both servers run on 127.0.0.1 with their defaults (one process each) and are driven by the same
load generator: asyncio keep-alive HTTP/1.1 connections, each sending one-row requests back to back,
at 1, 8 and 64 concurrent clients. Reported per level: requests/s, p50 and p99 latency, errors, and
the ratios gravityml / MLflow. Then in-process throughput of the native model against its ONNX fp32
and int8 exports. Results: benchmarks/results/serving.json.

    .venv/bin/python benchmarks/serving.py [--requests 10000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serving.json"
PY = sys.executable
GRAVITYML = [PY, "-m", "gravityml"]
MLFLOW = str(Path(PY).with_name("mlflow"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        # mlflow serve starts uvicorn as a child: signal the whole group
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---- the load generator ------------------------------------------------------------------------


async def _client(port: int, requests: list[bytes], count: int, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(count):
            start = time.perf_counter()
            writer.write(requests[i % len(requests)])
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif line.lower().startswith(b"transfer-encoding: chunked"):
                    raise RuntimeError("chunked responses are not expected")
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if b" 200 " not in status_line:
                errors.append(status_line.decode(errors="replace").strip())
    finally:
        writer.close()


async def _drive(port: int, requests: list[bytes], clients: int, total: int) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[str] = []
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    start = time.perf_counter()
    outcomes = await asyncio.gather(
        *(_client(port, requests[i::clients] or requests, n, latencies, errors) for i, n in enumerate(per_client)),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - start
    failures = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    lat = np.asarray(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors) + len(failures),
        "error_samples": (errors + failures)[:3],
        "seconds": elapsed,
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def http_post(path: str, body: bytes, port: int) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def load_levels(port: int, requests: list[bytes], levels: list[tuple[int, int]]) -> list[dict[str, float]]:
    # A short warm-up so both servers have imported and touched everything before timing.
    asyncio.run(_drive(port, requests, 4, 200))
    return [asyncio.run(_drive(port, requests, clients, total)) for clients, total in levels]


# ---- the benchmark -----------------------------------------------------------------------------


MLP_JOB = """
name: tumor-mlp
task: supervised
data: {source: "sklearn:breast_cancer", target: target, split: {test: 0.2, seed: 7}}
model: {type: mlp, params: {hidden: [256, 128]}}
train: {epochs: 20, seed: 7}
compute: {accelerator: cpu, precision: fp32}
"""


def train(home: Path, *, mlp: bool) -> None:
    env = {**os.environ, "GRAVITYML_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    jobs = [ROOT / "examples" / "tumor.yaml"]
    if mlp:
        (home / "mlp.yaml").write_text(MLP_JOB)
        jobs.append(home / "mlp.yaml")
    for job in jobs:
        subprocess.run([*GRAVITYML, "train", str(job)], env=env, check=True, stdout=subprocess.DEVNULL)


def rows_and_columns() -> tuple[list[list[float]], list[str]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    return frame.to_numpy().tolist(), list(frame.columns)


def serve_bench(home: Path, levels: list[tuple[int, int]], mlflow_cap: int) -> dict:
    rows, columns = rows_and_columns()
    env = {**os.environ, "GRAVITYML_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
    # mlflow serve runs `uvicorn` by name: the venv's bin must be on PATH, as in an activated venv.
    env["PATH"] = f"{Path(PY).parent}{os.pathsep}{env.get('PATH', '')}"
    out: dict = {}

    port = free_port()
    proc = subprocess.Popen([*GRAVITYML, "serve", "tumor", "--port", str(port), "--no-access-log"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc)
        bodies = [json.dumps({"inputs": [{"name": "input", "shape": [1, len(r)], "datatype": "FP64", "data": r}]}).encode()
                  for r in rows]
        out["gravityml"] = load_levels(port, [http_post("/v2/models/tumor/infer", b, port) for b in bodies], levels)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready") as response:
            out["gravityml_healthy_after"] = response.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            text = response.read().decode()
        calls = sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("gravityml_batch_requests_count"))
        served = sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("gravityml_batch_requests_sum"))
        out["gravityml_mean_requests_per_model_call"] = served / calls if calls else None
    finally:
        stop(proc)

    port = free_port()
    proc = subprocess.Popen([MLFLOW, "models", "serve", "-m", "models:/tumor/1", "--env-manager", "local", "--host",
                             "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/ping", proc)
        bodies = [json.dumps({"dataframe_split": {"columns": columns, "data": [r]}}).encode() for r in rows]
        # MLflow is the slower server: fewer requests per level keep the run short; rates stay comparable.
        out["mlflow_levels"] = [(clients, min(total, mlflow_cap)) for clients, total in levels]
        out["mlflow"] = load_levels(port, [http_post("/invocations", b, port) for b in bodies], out["mlflow_levels"])
    finally:
        stop(proc)

    out["ratios"] = [
        {
            "clients": g["clients"],
            "req_per_s_gravityml_over_mlflow": g["req_per_s"] / m["req_per_s"],
            "p99_mlflow_over_gravityml": m["p99_ms"] / g["p99_ms"],
        }
        for g, m in zip(out["gravityml"], out["mlflow"])
    ]
    return out


def runtime_bench(home: Path, seconds: float, name: str) -> dict:
    """Rows/s in-process: the native model vs its ONNX fp32 and int8 exports (onnxruntime).

    Every runtime gets one thread (OpenMP/BLAS via threadpoolctl, onnxruntime's intra-op pool), as
    in the server: on a shared 2-core machine, spinning thread pools measure contention, not models.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    os.environ["GRAVITYML_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    import pandas as pd

    from gravityml.inference import OnnxModel, export_model, load

    rows, columns = rows_and_columns()
    frame = pd.DataFrame(rows, columns=columns)
    native = load(name)
    exports = {}
    for quantize in (None, "int8"):
        report = export_model(name, home / f"export-{name}-{quantize or 'fp32'}", quantize=quantize)
        exported = OnnxModel(report.directory, threads=1, encode=getattr(native, "encode", None))
        exports[quantize or "fp32"] = (exported, report.parity)
    result: dict = {"parity": {k: v[1] for k, v in exports.items()}, "throughput": {}}
    for batch in (1, 64, 1024):
        data = pd.concat([frame] * (1 + batch // len(frame)), ignore_index=True).head(batch)
        timings = {}
        for name, model in (("native", native), ("onnx_fp32", exports["fp32"][0]), ("onnx_int8", exports["int8"][0])):
            model.predict(data)
            n, start = 0, time.perf_counter()
            while n < 3 or time.perf_counter() - start < seconds:
                model.predict(data)
                n += 1
            timings[name] = {"rows_per_s": n * batch / (time.perf_counter() - start), "calls": n}
            # The same without the schema check that every runtime shares: the model call itself.
            prepared = model.prepare(data)
            n, start = 0, time.perf_counter()
            while n < 3 or time.perf_counter() - start < seconds:
                model._predict(prepared)
                n += 1
            timings[name]["rows_per_s_model_call"] = n * batch / (time.perf_counter() - start)
        for name in ("onnx_fp32", "onnx_int8"):
            timings[name]["speedup_vs_native"] = timings[name]["rows_per_s"] / timings["native"]["rows_per_s"]
            timings[name]["model_call_speedup_vs_native"] = (
                timings[name]["rows_per_s_model_call"] / timings["native"]["rows_per_s_model_call"]
            )
        result["throughput"][f"batch_{batch}"] = timings
    return result


def report_serving(serving: dict) -> None:
    print(f"{'clients':>8} {'gravityml req/s':>16} {'mlflow req/s':>13} {'ratio':>6} {'p99 g/m (ms)':>16} errors g/m")
    for g, m, r in zip(serving["gravityml"], serving["mlflow"], serving["ratios"]):
        print(f"{g['clients']:>8} {g['req_per_s']:>16.0f} {m['req_per_s']:>13.0f} {r['req_per_s_gravityml_over_mlflow']:>6.1f}"
              f" {g['p99_ms']:>7.1f}/{m['p99_ms']:<8.1f} {g['errors']}/{m['errors']}", flush=True)


def print_runtimes(runtimes: dict) -> None:
    for name, result in runtimes.items():
        for batch, timings in result["throughput"].items():
            print(name, batch, {k: (round(v["rows_per_s"]), round(v["rows_per_s_model_call"])) for k, v in timings.items()},
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="requests at 64 clients (8: half, 1: a fifth)")
    parser.add_argument("--quick", action="store_true", help="a short run to check the script works")
    parser.add_argument("--in-process-only", action="store_true",
                        help="rerun only the native/ONNX comparison and update it in the results file")
    args = parser.parse_args()
    total = 400 if args.quick else args.requests
    levels = [(1, max(100, total // 5)), (8, max(200, total // 2)), (64, total)]
    home = Path(tempfile.mkdtemp(prefix="gravityml-bench-serving-"))
    seconds = 0.5 if args.quick else 3.0
    try:
        train(home, mlp=True)
        if args.in_process_only:
            result = json.loads(RESULTS.read_text())
            result["in_process"] = {n: runtime_bench(home, seconds, n) for n in ("tumor", "tumor-mlp")}
            RESULTS.write_text(json.dumps(result, indent=2))
            print_runtimes(result["in_process"])
            return
        serving = serve_bench(home, levels, 100 if args.quick else 2000)
        report_serving(serving)
        runtimes = {n: runtime_bench(home, seconds, n) for n in ("tumor", "tumor-mlp")}
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result = {
        "benchmark": "serving",
        "model": "served: tumor (examples/tumor.yaml: hist_gradient_boosting, breast_cancer, 30 features), one row "
                 "per request; in process also tumor-mlp (torch MLP 256-128)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "levels": levels,
        "serving": serving,
        "in_process": runtimes,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2))
    print_runtimes(runtimes)
    print(f"wrote {RESULTS}" if not args.quick else "quick run: nothing written")


if __name__ == "__main__":
    main()
