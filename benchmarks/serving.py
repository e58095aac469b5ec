"""Serving benchmark: `gravityml serve` side by side with the floor of its stack and the servers users
would pick instead, on the same registered model and the same load generator.

Servers (each on 127.0.0.1, started once, all kept up; each measured in turn):

* ``gravityml``: `gravityml serve tumor` (one process, defaults: --max-delay-ms 0, batch 64);
* ``gravityml-2w``: the same with ``--workers 2``;
* ``floor``: a bare FastAPI endpoint (uvicorn, one process) that parses the same OIP JSON and calls
  the model's scikit-learn pipeline ``predict_proba`` inline: what this stack costs without
  gravityml's checks, batching and metrics;
* ``mlserver``: MLServer with its scikit-learn runtime and adaptive batching (max_batch_size 64,
  max_batch_time 2 ms), installed in a separate environment (``--mlserver-venv``, made with
  ``python -m venv V && V/bin/pip install mlserver mlserver-sklearn 'uvloop<0.22'``: MLServer 1.7.1's
  inference pool fails to start with uvloop 0.23); skipped, and said so in the results, where missing;
* ``ray_serve`` (``--ray-venv V``): Ray Serve 2.x, one replica, ``@serve.batch`` (max_batch_size 64,
  batch_wait_timeout_s 2 ms) on the same pipeline, a local Ray on 127.0.0.1 with 2 CPUs;
* ``mlflow`` (``--mlflow``): `mlflow models serve`.

The load generator: asyncio keep-alive HTTP/1.1 connections, each sending one-row requests back to
back, at 1, 8 and 64 clients. Each level runs ``--pairs`` rounds; in each round every server is
measured once, the order reversed every other round (alternating pairs), with the load average
before each measurement. Reported: every measurement (req/s, p50, p99, errors) and, per level, the
median over rounds of gravityml / peer ratios. Results: benchmarks/results/serving.json (the
in-process native-vs-ONNX part is rerun only with ``--in-process``).

    .venv/bin/python benchmarks/serving.py [--pairs 3] [--requests 1500] [--mlflow] [--in-process] [--quick]
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


FLOOR_APP = """
import os, sys
from threadpoolctl import threadpool_limits
import numpy as np, pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response
import json

from gravityml.inference import load

model = load(os.environ["BENCH_MODEL"])
pipeline, columns = model.pipeline, model.schema.feature_names
classes = [str(c) for c in model.pipeline.classes_]
threadpool_limits(1)
app = FastAPI()


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> Response:
    body = json.loads(await request.body())
    tensor = body["inputs"][0]
    rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    proba = pipeline.predict_proba(pd.DataFrame(rows, columns=columns))
    best = proba.argmax(axis=1)
    out = {"model_name": name, "outputs": [
        {"name": "prediction", "datatype": "BYTES", "shape": [len(best)], "data": [classes[i] for i in best]},
        {"name": "confidence", "datatype": "FP64", "shape": [len(best)], "data": proba.max(axis=1).tolist()}]}
    return Response(json.dumps(out), media_type="application/json")


@app.get("/ready")
async def ready() -> dict:
    return {"ready": True}
"""


RAY_APP = r'''
import json, signal, sys, time
import joblib, numpy as np, pandas as pd
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

path, port = sys.argv[1], int(sys.argv[2])


@serve.deployment(max_ongoing_requests=256)
class Tumor:
    def __init__(self, path: str) -> None:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
        self.pipeline = joblib.load(path)
        self.columns = list(self.pipeline.feature_names_in_)
        self.classes = [str(c) for c in self.pipeline.classes_]

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def predict(self, frames: list) -> list:
        proba = self.pipeline.predict_proba(pd.concat(frames, ignore_index=True))
        out, start = [], 0
        for f in frames:
            out.append(proba[start:start + len(f)]); start += len(f)
        return out

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET":  # readiness
            return Response("{}", media_type="application/json")
        body = json.loads(await request.body())
        t = body["inputs"][0]
        frame = pd.DataFrame(np.asarray(t["data"], dtype=np.float64).reshape(t["shape"]), columns=self.columns)
        proba = await self.predict(frame)
        best = proba.argmax(axis=1)
        return Response(json.dumps({"model_name": "tumor", "outputs": [
            {"name": "prediction", "datatype": "BYTES", "shape": [len(best)], "data": [self.classes[i] for i in best]},
            {"name": "confidence", "datatype": "FP64", "shape": [len(best)], "data": proba.max(axis=1).tolist()}]}),
            media_type="application/json")


def _stop(*_):
    serve.shutdown()
    ray.shutdown()
    sys.exit(0)


signal.signal(signal.SIGTERM, _stop)
ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
serve.start(http_options={"host": "127.0.0.1", "port": port})
serve.run(Tumor.bind(path), route_prefix="/v2/models/tumor/infer", name="tumor")
print("ready", flush=True)
while True:
    time.sleep(3600)
'''


def start(name: str, argv: list[str], env: dict, ready: str, port: int, procs: dict) -> None:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    procs[name] = (proc, port)
    wait_ready(f"http://127.0.0.1:{port}{ready}", proc)


def mlserver_folder(home: Path, env: dict, port: int) -> Path:
    """An MLServer model repository: the pipeline as joblib, adaptive batching, pandas decoding."""
    folder = home / "mlserver"
    (folder / "tumor").mkdir(parents=True)
    script = (f"from gravityml.inference import load; import joblib; "
              f"joblib.dump(load('tumor').pipeline, {str(folder / 'tumor' / 'model.joblib')!r})")
    subprocess.run([PY, "-c", script], env=env, check=True)
    (folder / "tumor" / "model-settings.json").write_text(json.dumps({
        "name": "tumor", "implementation": "mlserver_sklearn.SKLearnModel", "max_batch_size": 64,
        "max_batch_time": 0.002, "parameters": {"uri": "./model.joblib"}}))
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port()}))
    return folder


def bodies(kind: str, rows: list[list[float]], columns: list[str], port: int) -> list[bytes]:
    if kind == "mlserver":  # one tensor per column, decoded into a frame (the pipeline selects by name)
        made = [json.dumps({"parameters": {"content_type": "pd"}, "outputs": [{"name": "predict_proba"}], "inputs": [
            {"name": c, "shape": [1], "datatype": "FP64", "data": [v]} for c, v in zip(columns, r)]}).encode() for r in rows]
        return [http_post("/v2/models/tumor/infer", b, port) for b in made]
    if kind == "mlflow":
        made = [json.dumps({"dataframe_split": {"columns": columns, "data": [r]}}).encode() for r in rows]
        return [http_post("/invocations", b, port) for b in made]
    made = [json.dumps({"inputs": [{"name": "input", "shape": [1, len(r)], "datatype": "FP64", "data": r}]}).encode()
            for r in rows]
    return [http_post("/v2/models/tumor/infer", b, port) for b in made]


def serve_bench(home: Path, levels: list[tuple[int, int]], pairs: int, mlserver_venv: Path | None, mlflow: bool,
                ray_venv: Path | None = None) -> dict:
    rows, columns = rows_and_columns()
    env = {**os.environ, "GRAVITYML_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
           "BENCH_MODEL": "tumor", "OMP_NUM_THREADS": "1"}
    env["PATH"] = f"{Path(PY).parent}{os.pathsep}{env.get('PATH', '')}"
    procs: dict[str, tuple[subprocess.Popen, int]] = {}
    skipped: dict[str, str] = {}
    out: dict = {"servers": {}, "skipped": skipped, "rounds": []}
    try:
        port = free_port()
        start("gravityml", [*GRAVITYML, "serve", "tumor", "--port", str(port), "--no-access-log"], env,
              "/v2/health/ready", port, procs)
        port = free_port()
        start("gravityml-2w", [*GRAVITYML, "serve", "tumor", "--port", str(port), "--no-access-log", "--workers", "2"],
              env, "/v2/health/ready", port, procs)
        (home / "floor.py").write_text(FLOOR_APP)
        port = free_port()
        start("floor", [PY, "-m", "uvicorn", "floor:app", "--app-dir", str(home), "--port", str(port), "--log-level",
                        "warning", "--no-access-log"], env, "/ready", port, procs)
        mlserver_bin = mlserver_venv / "bin" / "mlserver" if mlserver_venv else None
        if mlserver_bin is not None and mlserver_bin.exists():
            port = free_port()
            folder = mlserver_folder(home, env, port)
            try:
                start("mlserver", [str(mlserver_bin), "start", str(folder)],
                      {**env, "PATH": f"{mlserver_bin.parent}:{env['PATH']}"}, "/v2/models/tumor/ready", port, procs)
            except RuntimeError as exc:
                stop(procs.pop("mlserver")[0])
                skipped["mlserver"] = f"did not start: {exc}"
        else:
            skipped["mlserver"] = (f"no MLServer at {mlserver_bin}: make one with python -m venv V && V/bin/pip install "
                                   "mlserver mlserver-sklearn, and pass --mlserver-venv V")
        ray_python = ray_venv / "bin" / "python" if ray_venv else None
        if ray_python is not None and (ray_venv / "bin" / "serve").exists():
            port = free_port()
            (home / "rayserve_app.py").write_text(RAY_APP)
            joblib_path = home / "mlserver" / "tumor" / "model.joblib"
            if not joblib_path.exists():
                mlserver_folder(home, env, free_port())
            try:
                start("ray_serve", [str(ray_python), str(home / "rayserve_app.py"), str(joblib_path), str(port)],
                      {**env, "RAY_USAGE_STATS_ENABLED": "0"}, "/v2/models/tumor/infer", port, procs)
            except RuntimeError as exc:
                stop(procs.pop("ray_serve")[0])
                skipped["ray_serve"] = f"did not start: {exc}"
        else:
            skipped["ray_serve"] = (f"no Ray Serve at {ray_venv}: make one with python -m venv V && V/bin/pip install "
                                    "'ray[serve]' scikit-learn pandas joblib, and pass --ray-venv V")
        if mlflow:
            port = free_port()
            start("mlflow", [MLFLOW, "models", "serve", "-m", "models:/tumor/1", "--env-manager", "local", "--host",
                             "127.0.0.1", "--port", str(port)], env, "/ping", port, procs)
        requests = {name: bodies(name if name in ("mlserver", "mlflow") else "oip", rows, columns, port)
                    for name, (_, port) in procs.items()}
        for name, (_, port) in procs.items():  # warm-up: every server has imported and touched everything
            asyncio.run(_drive(port, requests[name], 4, 200))
        names = list(procs)
        for clients, total in levels:
            for r in range(pairs):
                order = names if r % 2 == 0 else names[::-1]
                measured = {}
                for name in order:
                    load = os.getloadavg()[0]
                    result = asyncio.run(_drive(procs[name][1], requests[name], clients, total))
                    result["load_average_1m"] = load
                    measured[name] = result
                    print(f"clients {clients:>3} round {r + 1} {name:>13}: {result['req_per_s']:7.0f} req/s  p50 "
                          f"{result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:8.2f} ms  errors {result['errors']}  "
                          f"load {load:.2f}", flush=True)
                out["rounds"].append({"clients": clients, "round": r + 1, "order": order, "results": measured})
        with urllib.request.urlopen(f"http://127.0.0.1:{procs['gravityml'][1]}/metrics") as response:
            text = response.read().decode()
        calls = sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("gravityml_batch_requests_count"))
        served = sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("gravityml_batch_requests_sum"))
        out["gravityml_mean_requests_per_model_call"] = served / calls if calls else None
    finally:
        for proc, _ in procs.values():
            stop(proc)
    out["servers"] = names
    out["medians"] = medians(out["rounds"], names)
    return out


def medians(rounds: list[dict], names: list[str]) -> list[dict]:
    """Per level: each server's median req/s, p50, p99 over rounds, and the median of the per-round
    ratios gravityml / peer (req/s: above 1 is more; p50 and p99: below 1 is lower latency)."""
    import statistics

    out = []
    for clients in sorted({r["clients"] for r in rounds}):
        mine = [r["results"] for r in rounds if r["clients"] == clients]
        level: dict = {"clients": clients, "rounds": len(mine), "servers": {}, "gravityml_over": {}}
        for name in names:
            level["servers"][name] = {k: statistics.median(m[name][k] for m in mine) for k in ("req_per_s", "p50_ms", "p99_ms")}
            level["servers"][name]["errors"] = sum(m[name]["errors"] for m in mine)
        for name in names:
            if name == "gravityml":
                continue
            level["gravityml_over"][name] = {
                k: statistics.median(m["gravityml"][k] / m[name][k] for m in mine) for k in ("req_per_s", "p50_ms", "p99_ms")}
        out.append(level)
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
    for level in serving["medians"]:
        print(f"clients {level['clients']} (median of {level['rounds']} rounds):", flush=True)
        for name, m in level["servers"].items():
            ratio = level["gravityml_over"].get(name)
            shown = (f"  gravityml/this: req/s {ratio['req_per_s']:.2f}, p50 {ratio['p50_ms']:.2f}, p99 {ratio['p99_ms']:.2f}"
                     if ratio else "")
            print(f"  {name:>13}: {m['req_per_s']:7.0f} req/s  p50 {m['p50_ms']:7.2f}  p99 {m['p99_ms']:8.2f}  "
                  f"errors {m['errors']}{shown}", flush=True)


def print_runtimes(runtimes: dict) -> None:
    for name, result in runtimes.items():
        for batch, timings in result["throughput"].items():
            print(name, batch, {k: (round(v["rows_per_s"]), round(v["rows_per_s_model_call"])) for k, v in timings.items()},
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="requests per measurement at 64 clients "
                        "(8: half, 1: a fifth)")
    parser.add_argument("--pairs", type=int, default=3, help="rounds per level (each measures every server once)")
    parser.add_argument("--mlserver-venv", type=Path, default=Path("/tmp/mlserver-venv"),
                        help="a virtual environment with mlserver and mlserver-sklearn installed")
    parser.add_argument("--ray-venv", type=Path, default=None,
                        help="a virtual environment with ray[serve], scikit-learn, pandas and joblib installed")
    parser.add_argument("--mlflow", action="store_true", help="measure `mlflow models serve` too")
    parser.add_argument("--in-process", action="store_true", help="rerun the native/ONNX in-process comparison")
    parser.add_argument("--quick", action="store_true", help="a short run to check the script works (nothing written)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the servers are stopped on the way out
    total = 200 if args.quick else args.requests
    levels = [(1, max(100, total // 5)), (8, max(100, total // 2)), (64, total)]
    pairs = 1 if args.quick else args.pairs
    home = Path(tempfile.mkdtemp(prefix="gravityml-bench-serving-"))
    seconds = 0.5 if args.quick else 3.0
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    try:
        train(home, mlp=args.in_process)
        serving = serve_bench(home, levels, pairs, args.mlserver_venv, args.mlflow, args.ray_venv)
        report_serving(serving)
        runtimes = {n: runtime_bench(home, seconds, n) for n in ("tumor", "tumor-mlp")} if args.in_process else None
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result = {
        "benchmark": "serving",
        "model": "served: tumor (examples/tumor.yaml: hist_gradient_boosting, breast_cancer, 30 features), one row "
                 "per request; in process also tumor-mlp (torch MLP 256-128)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
        "levels": levels,
        "pairs": pairs,
        "serving": serving,
        "in_process": runtimes if runtimes is not None else previous.get("in_process"),
        "in_process_when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) if runtimes is not None
        else previous.get("in_process_when", previous.get("when")),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2))
    if runtimes is not None:
        print_runtimes(runtimes)
    print(f"wrote {RESULTS}" if not args.quick else "quick run: nothing written")


if __name__ == "__main__":
    main()
