"""Prediction logs under load: `gravityml serve` p99 with `--log-predictions` on against off.

The same registered model (examples/tumor.yaml) is served twice per pair, logs off then on (and
the next pair on then off), each driven by the same keep-alive load generator as
benchmarks/serving.py: one-row requests from 8 concurrent clients. Every pair is reported with the
load average; the issue's bound is p99 with logs at most 10% above p99 without. Results:
benchmarks/results/predlog.json.

    .venv/bin/python benchmarks/predlog.py [--pairs 3] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving  # noqa: E402 - the serving benchmark's load generator and helpers
from _results import write_results  # noqa: E402

RESULTS = serving.ROOT / "benchmarks" / "results" / "predlog.json"


def run_once(home: Path, logs: Path | None, requests: int) -> dict:
    env = {**os.environ, "GRAVITYML_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    port = serving.free_port()
    extra = ["--log-predictions", str(logs)] if logs is not None else []
    proc = subprocess.Popen([*serving.GRAVITYML, "serve", "tumor", "--port", str(port), "--no-access-log", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        serving.wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc)
        rows, _ = serving.rows_and_columns()
        bodies = [json.dumps({"inputs": [{"name": "input", "shape": [1, len(r)], "datatype": "FP64", "data": r}]})
                  .encode() for r in rows]
        wire = [serving.http_post("/v2/models/tumor/infer", b, port) for b in bodies]
        asyncio.run(serving._drive(port, wire, 4, 200))  # warm-up
        result = asyncio.run(serving._drive(port, wire, 8, requests))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            text = response.read().decode()
        gauges = {l.split()[0]: float(l.split()[-1]) for l in text.splitlines()
                  if l.startswith("gravityml_prediction_log_")}
        result["log_gauges"] = gauges
    finally:
        serving.stop(proc)
    if logs is not None:
        result["rows_in_files"] = int(sum(len(__import__("pandas").read_parquet(f)) for f in logs.glob("*.parquet")))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-predlog-") as tmp:
        home = Path(tmp) / "ws"
        home.mkdir()
        serving.train(home, mlp=False)
        pairs = []
        for i in range(args.pairs):
            order = ["off", "on"] if i % 2 == 0 else ["on", "off"]
            pair: dict = {"order": order, "load_average_before": os.getloadavg()}
            for mode in order:
                logs = Path(tmp) / f"logs-{i}" if mode == "on" else None
                pair[mode] = run_once(home, logs, args.requests)
            pair["p99_on_over_off"] = pair["on"]["p99_ms"] / pair["off"]["p99_ms"]
            pair["load_average_after"] = os.getloadavg()
            pairs.append(pair)
            print(f"pair {i + 1} ({' then '.join(order)}): p99 off {pair['off']['p99_ms']:.2f} ms, "
                  f"on {pair['on']['p99_ms']:.2f} ms, ratio {pair['p99_on_over_off']:.3f}; "
                  f"errors {pair['off']['errors']}/{pair['on']['errors']}; logged {pair['on']['rows_in_files']} rows, "
                  f"dropped {pair['on']['log_gauges'].get('gravityml_prediction_log_dropped_rows')}; "
                  f"load {pair['load_average_before'][0]:.1f}")
    ratios = [p["p99_on_over_off"] for p in pairs]
    write_results(RESULTS, "predlog", requests=args.requests, clients=8, pairs=pairs,
                  median_p99_ratio=float(np.median(ratios)), within_10_percent=bool(np.median(ratios) <= 1.10))
    print(f"median p99 ratio (on / off) {np.median(ratios):.3f} -> {RESULTS}")


if __name__ == "__main__":
    main()
