"""Ray Train with 1 and 2 workers against the plain loop in one process (issue 13, point 5).

The same MLP (64 inputs, 256-128 hidden, 10 classes; same seed, so the same initial weights) on a
synthetic 20,000 x 64 table (seeded numpy; nothing downloaded), batch 256, AdamW, fp32, one thread
per process, for ``--epochs`` epochs, three ways:

* ``plain``: :func:`~gravityml.paradigms.deep.fit_torch` in this process (what ``compute.workers: 1``
  runs);
* ``ray1``: :func:`~gravityml.paradigms.deep._raytrain.fit_ray_train` with one Ray Train worker (the
  same loop inside Ray Train's ``TorchTrainer``: its worker group, ``ray.train.report`` every epoch,
  checkpoints through Ray Train);
* ``ray2``: two Ray Train workers (gloo, each on its half of the rows; one global batch of 2 x 256).

Ray runs as a local cluster started by this script with ``ray.init`` inside a private network
namespace (the script re-runs itself under ``unshare -n`` with loopback up, as root), so nothing binds
an outside interface. Each way is timed twice: ``wall_s`` around the whole call (worker start-up
included), and the loop's own rate (``time/samples_per_s`` of each epoch, x workers for the global
rate) without the first epoch. Rounds rotate the order; the load average is recorded with each run.
Scaling efficiency = ray2's global samples/s / (2 x ray1's). Overhead at one worker = plain / ray1 - 1.

    .venv/bin/python benchmarks/ray_train.py [--rounds 3] [--epochs 6]

Results: benchmarks/results/ray_train.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ray_train.json"
ROWS, FEATURES, CLASSES, BATCH = 20_000, 64, 10, 256


def _in_private_network() -> None:
    if os.environ.get("GRAVITYML_NETNS") == "1":
        return
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        sys.exit("benchmarks/ray_train.py starts a Ray cluster: run it as root, where `unshare -n` is available")
    inner = f"ip link set lo up && exec {sys.executable} {' '.join(map(str, sys.argv))}"
    env = {**os.environ, "GRAVITYML_NETNS": "1", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    sys.exit(subprocess.call(["unshare", "-n", "sh", "-c", inner], env=env))


def _data() -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(CLASSES, FEATURES)) * 2.0
    y = rng.integers(0, CLASSES, size=ROWS)
    X = (centers[y] + rng.normal(size=(ROWS, FEATURES))).astype("float32")
    return X, y.astype("int64")


def _spec(workers: int, epochs: int) -> Any:
    from gravityml.spec import load_spec

    return load_spec({
        "name": "bench-ray-train", "task": "supervised", "data": {"source": "sklearn:iris", "target": "target"},
        "model": {"type": "mlp", "params": {"hidden": [256, 128]}},
        "train": {"epochs": epochs, "batch_size": BATCH, "lr": 1e-3, "seed": 3},
        "compute": {"accelerator": "cpu", "precision": "fp32", "threads": 1, "workers": workers},
    })


def _network() -> Any:
    import torch

    from gravityml.models._nets import DEFAULTS, build_network

    torch.manual_seed(3)
    return build_network({"arch": "mlp", "params": {**DEFAULTS["mlp"], "hidden": [256, 128]}, "n_inputs": FEATURES,
                          "n_outputs": CLASSES})


def _run(way: str, X: Any, y: Any, epochs: int) -> dict[str, Any]:
    from gravityml.paradigms import TrainContext
    from gravityml.paradigms.deep import fit_torch
    from gravityml.paradigms.deep._raytrain import fit_ray_train

    workers = 2 if way == "ray2" else 1
    spec = _spec(workers, epochs)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = TrainContext(spec=spec, workdir=Path(tmp), checkpoint_dir=Path(tmp))
        load = os.getloadavg()[0]
        began = time.perf_counter()
        if way == "ray1":
            fit = fit_ray_train(ctx, _network(), {"X": X, "y": y, "X_val": None, "y_val": None},
                                {"loss": "cross_entropy", "weights": None, "precision": "fp32", "epochs": epochs,
                                 "checkpoint": True})
        else:
            fit = fit_torch(ctx, _network(), X, y, precision="fp32")
        wall = time.perf_counter() - began
    rates = [row["time/samples_per_s"] * workers for row in (fit.history[1:] or fit.history)]  # rank 0 x workers
    return {"way": way, "workers": workers, "wall_s": wall, "loop_samples_per_s": statistics.median(rates),
            "epochs_run": fit.epochs_run, "final_train_loss": fit.history[-1]["train/loss"], "load_before": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    _in_private_network()
    import logging

    import ray

    ray.init(num_cpus=4, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    X, y = _data()
    ways = ["plain", "ray1", "ray2"]
    runs: list[dict[str, Any]] = []
    try:
        _run("ray1", X, y, 1)  # warm-up: Ray's first worker start and imports, not timed
        for r in range(args.rounds):
            order = ways[r % 3:] + ways[: r % 3]
            for way in order:
                res = _run(way, X, y, args.epochs)
                res["round"] = r
                runs.append(res)
                print(f"round {r} {way}: wall {res['wall_s']:.1f} s, loop {res['loop_samples_per_s']:,.0f} samples/s, "
                      f"load {res['load_before']:.1f}", flush=True)
    finally:
        ray.shutdown()
    by = {w: [x for x in runs if x["way"] == w] for w in ways}
    med = {w: {"wall_s": statistics.median(x["wall_s"] for x in by[w]),
               "loop_samples_per_s": statistics.median(x["loop_samples_per_s"] for x in by[w])} for w in ways}
    per_round = []
    for r in range(args.rounds):
        row = {x["way"]: x for x in runs if x["round"] == r}
        per_round.append({
            "round": r,
            "overhead_1_worker_loop": row["plain"]["loop_samples_per_s"] / row["ray1"]["loop_samples_per_s"] - 1,
            "overhead_1_worker_wall": row["ray1"]["wall_s"] / row["plain"]["wall_s"] - 1,
            "scaling_efficiency_loop": row["ray2"]["loop_samples_per_s"] / (2 * row["ray1"]["loop_samples_per_s"]),
            "speedup_2_over_1_wall": row["ray1"]["wall_s"] / row["ray2"]["wall_s"],
        })
    summary = {k: statistics.median(p[k] for p in per_round) for k in per_round[0] if k != "round"}
    write_results(RESULTS, "ray_train", cpus=os.cpu_count(), workload=(
        f"MLP 64-256-128-10 on synthetic {ROWS}x{FEATURES}, batch {BATCH} per worker, fp32, 1 thread per process, "
        f"{args.epochs} epochs; local Ray cluster (ray.init num_cpus=4) in a private network namespace"),
        runs=runs, per_round=per_round, median=med, summary=summary,
        when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print("median:", {k: round(v, 3) for k, v in summary.items()})


if __name__ == "__main__":
    main()
