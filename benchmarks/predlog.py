"""Prediction logs under load: `gravityml serve` p99 with `--log-predictions` on against off.

The same registered model (examples/tumor.yaml) is served by two servers at once, one logging
(`--log-predictions DIR`) and one not, and the same keep-alive load generator as
benchmarks/serving.py (one-row requests from 8 concurrent clients) drives them in alternating
short bursts: pair 1 off then on, pair 2 on then off, and so on. Both servers share whatever else
the machine is doing at that moment, so the slow drift of a shared machine's load falls on both
sides alike. Every pair is reported with the load average and the server's CPU time per request;
the summary gives the median of the pairs' p99 ratios and the p99 of all bursts pooled. The issue's
bound is p99 with logs at most 10% above p99 without. Results: benchmarks/results/predlog.json.

    .venv/bin/python benchmarks/predlog.py [--pairs 20] [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving  # noqa: E402 - the serving benchmark's load generator and helpers
from _results import write_results  # noqa: E402

RESULTS = serving.ROOT / "benchmarks" / "results" / "predlog.json"
CLIENTS = 8
TICK = os.sysconf("SC_CLK_TCK")


def start(home: Path, logs: Path | None) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "GRAVITYML_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    port = serving.free_port()
    extra = ["--log-predictions", str(logs)] if logs is not None else []
    proc = subprocess.Popen([*serving.GRAVITYML, "serve", "tumor", "--port", str(port), "--no-access-log", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    serving.wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc)
    return proc, port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def burst(port: int, wire: list[bytes], total: int) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    per_client = [total // CLIENTS + (1 if i < total % CLIENTS else 0) for i in range(CLIENTS)]
    outcomes = await asyncio.gather(*(serving._client(port, wire[i::CLIENTS] or wire, n, latencies, errors)
                                      for i, n in enumerate(per_client)), return_exceptions=True)
    errors += [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return [x * 1000 for x in latencies], errors


def measured(port: int, pid: int, wire: list[bytes], total: int) -> tuple[dict[str, Any], list[float]]:
    cpu, began = cpu_seconds(pid), time.perf_counter()
    latencies, errors = asyncio.run(burst(port, wire, total))
    seconds, cpu = time.perf_counter() - began, cpu_seconds(pid) - cpu
    lat = np.asarray(latencies)
    return {
        "requests": len(latencies), "errors": len(errors), "error_samples": errors[:3], "seconds": seconds,
        "req_per_s": len(latencies) / seconds, "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)), "server_cpu_ms_per_request": cpu * 1000 / max(1, len(latencies)),
    }, latencies


def gc_pauses(drain_seconds: float | None, requests: int = 2000) -> dict[str, Any]:
    """Garbage collections while ``requests`` one-row requests are logged at ~200/s in this process
    (a server-sized heap: sklearn, pandas, MLflow, FastAPI imported), with the writer draining every
    ``drain_seconds`` (None: nothing logged). Each request builds its frame and outputs as the
    server does; queued frames that live long reach the oldest generation and bring full collections."""
    import gc

    import fastapi  # noqa: F401 - a serving process's heap
    import mlflow  # noqa: F401
    import pandas as pd
    import sklearn.ensemble  # noqa: F401

    from gravityml.inference._predlog import LogConfig, PredictionLogger

    stats = {g: {"count": 0, "ms": 0.0} for g in (0, 1, 2)}
    began = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            stats[info["generation"]]["count"] += 1
            stats[info["generation"]]["ms"] += (time.perf_counter() - began[0]) * 1000

    columns = {f"feature {i}": np.array([0.5]) for i in range(30)}
    gc.collect()
    gc.callbacks.append(timed)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-predlog-gc-") as tmp:
            logger = PredictionLogger(LogConfig(target=tmp, drain_seconds=drain_seconds)) \
                if drain_seconds is not None else None
            for _ in range(requests):
                frame = pd.DataFrame(columns)
                outputs = pd.DataFrame({"prediction": np.array([1]), "confidence": np.array([0.9])})
                if logger is not None:
                    logger.log(frame, outputs, model_version="m/1", latency_ms=1.0)
                time.sleep(0.004)
            if logger is not None:
                logger.close()
    finally:
        gc.callbacks.remove(timed)
    return {"drain_seconds": drain_seconds, "requests": requests, "heap_objects": len(gc.get_objects()),
            "collections": {f"gen{g}": v for g, v in stats.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--requests", type=int, default=400, help="requests per burst")
    parser.add_argument("--gc-only", action="store_true",
                        help="only count garbage collections in-process (no drain, 0.5 s and 50 ms drains) and "
                             "store them as gc_pauses in the results file")
    args = parser.parse_args()
    if args.gc_only:
        runs = [gc_pauses(None), gc_pauses(0.5), gc_pauses(0.05)]
        for run in runs:
            print(f"drain {run['drain_seconds']}: " + ", ".join(f"{g} {v['count']} ({v['ms']:.0f} ms)"
                                                                for g, v in run["collections"].items()))
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "predlog"}
        results["gc_pauses"] = runs
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory(prefix="bench-predlog-") as tmp:
        home = Path(tmp) / "ws"
        home.mkdir()
        serving.train(home, mlp=False)
        logs = Path(tmp) / "logs"
        servers = {"off": start(home, None), "on": start(home, logs)}
        try:
            rows, _ = serving.rows_and_columns()
            bodies = [json.dumps({"inputs": [{"name": "input", "shape": [1, len(r)], "datatype": "FP64",
                                              "data": r}]}).encode() for r in rows]
            wires = {m: [serving.http_post("/v2/models/tumor/infer", b, port) for b in bodies]
                     for m, (_, port) in servers.items()}
            for mode, (_, port) in servers.items():  # warm-up
                asyncio.run(burst(port, wires[mode], 300))
            pairs: list[dict[str, Any]] = []
            pooled: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(args.pairs):
                order = ["off", "on"] if i % 2 == 0 else ["on", "off"]
                pair: dict[str, Any] = {"order": order, "load_average_before": os.getloadavg()}
                for mode in order:
                    proc, port = servers[mode]
                    pair[mode], latencies = measured(port, proc.pid, wires[mode], args.requests)
                    pooled[mode] += latencies
                pair["p99_on_over_off"] = pair["on"]["p99_ms"] / pair["off"]["p99_ms"]
                pairs.append(pair)
                print(f"pair {i + 1:2d} ({' then '.join(order)}): p99 off {pair['off']['p99_ms']:7.2f} ms, "
                      f"on {pair['on']['p99_ms']:7.2f} ms, ratio {pair['p99_on_over_off']:.3f}; p50 "
                      f"{pair['off']['p50_ms']:.1f} / {pair['on']['p50_ms']:.1f} ms; server CPU "
                      f"{pair['off']['server_cpu_ms_per_request']:.2f} / {pair['on']['server_cpu_ms_per_request']:.2f}"
                      f" ms/request; errors {pair['off']['errors']}/{pair['on']['errors']}; "
                      f"load {pair['load_average_before'][0]:.1f}", flush=True)
            with urllib.request.urlopen(f"http://127.0.0.1:{servers['on'][1]}/metrics") as response:
                text = response.read().decode()
            gauges = {line.split()[0]: float(line.split()[-1]) for line in text.splitlines()
                      if line.startswith("gravityml_prediction_log_")}
        finally:
            for proc, _ in servers.values():
                serving.stop(proc)
        import pandas as pd

        rows_in_files = int(sum(len(pd.read_parquet(f)) for f in logs.glob("*.parquet")))
    ratios = [p["p99_on_over_off"] for p in pairs]
    pooled_p99 = {m: float(np.percentile(v, 99)) for m, v in pooled.items()}
    cpu = {m: float(np.median([p[m]["server_cpu_ms_per_request"] for p in pairs])) for m in ("off", "on")}
    answered_on = sum(p["on"]["requests"] for p in pairs) + 300
    write_results(RESULTS, "predlog", requests_per_burst=args.requests, clients=CLIENTS, pairs=pairs,
                  median_p99_ratio=float(np.median(ratios)),
                  pooled_p99_ms=pooled_p99, pooled_p99_ratio=pooled_p99["on"] / pooled_p99["off"],
                  pooled_p50_ms={m: float(np.percentile(v, 50)) for m, v in pooled.items()},
                  median_server_cpu_ms_per_request=cpu,
                  log_gauges=gauges, rows_in_files=rows_in_files, requests_answered_with_logs=answered_on,
                  within_10_percent=bool(np.median(ratios) <= 1.10))
    print(f"median p99 ratio (on / off) {np.median(ratios):.3f}; pooled p99 {pooled_p99['off']:.2f} / "
          f"{pooled_p99['on']:.2f} ms (ratio {pooled_p99['on'] / pooled_p99['off']:.3f}); server CPU "
          f"{cpu['off']:.2f} / {cpu['on']:.2f} ms/request; {rows_in_files} of {answered_on} rows in the log files, "
          f"{gauges.get('gravityml_prediction_log_dropped_rows_total')} dropped -> {RESULTS}")


if __name__ == "__main__":
    main()
