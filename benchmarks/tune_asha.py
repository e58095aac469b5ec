"""Search wall-clock with ASHA against the same trials run out (issue 13, point 5).

The same search (a torch MLP on scikit-learn's 8x8 digits, ``lr`` log-uniform over four decades,
``--trials`` trials of ``--epochs`` epochs) with ``scheduler: asha`` and ``scheduler: none``, through
``gravityml train``'s own code (:func:`gravityml.execution.run_job`), each in a fresh workspace.
Optuna's TPE draws its first 10 trials at random from the sampler's seed, so with up to 10 trials
both searches try the same values: the difference is what ASHA stops early. One unmeasured search
first takes the imports and first-call costs. CPU-seconds are the process's (trials run in it). Pairs alternate which
runs first; every pair, the load average around it, and the best test accuracy of each are written
to benchmarks/results/tune_asha.json.

    .venv/bin/python benchmarks/tune_asha.py [--pairs 3] [--trials 8] [--epochs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import write_results  # noqa: E402


def _spec(name: str, scheduler: str, trials: int, epochs: int) -> dict[str, Any]:
    return {
        "name": name, "task": "supervised",
        "data": {"source": "sklearn:digits", "target": "target", "split": {"test": 0.2, "validation": 0.1, "seed": 7}},
        "model": {"type": "mlp", "params": {"hidden": [64]}},
        "train": {"epochs": epochs, "batch_size": 64, "seed": 7},
        "compute": {"accelerator": "cpu", "precision": "fp32", "threads": 1},
        "tune": {"metric": "test/accuracy", "mode": "max", "trials": trials, "scheduler": scheduler, "seed": 11,
                 "space": {"lr": {"loguniform": [1.0e-5, 1.0e-1]}}},
    }


def _search(scheduler: str, trials: int, epochs: int) -> dict[str, Any]:
    from gravityml.data import local_catalog
    from gravityml.execution import run_job
    from gravityml.tracking import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "search.yaml"
        path.write_text(yaml.safe_dump(_spec(f"bench-{scheduler}", scheduler, trials, epochs)))
        ws = Workspace.current(Path(tmp) / "ws")
        load_before = os.getloadavg()[0]
        wall, cpu = time.perf_counter(), time.process_time()
        result = run_job(path, workspace=ws, catalog=local_catalog())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {
            "scheduler": scheduler, "wall_s": wall, "cpu_s": cpu,
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "trials_complete": int(result.lineage["trials_complete"]),
            "trials_pruned": int(result.lineage["trials_pruned"]),
            "best_test_accuracy": float(result.metrics["test/accuracy"]),
            "best_params": result.lineage["best_params"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    _search("none", 1, 1)  # warm-up: imports and first-call costs are not either scheduler's
    pairs: list[dict[str, Any]] = []
    for i in range(args.pairs):
        order = ("asha", "none") if i % 2 == 0 else ("none", "asha")
        runs = {s: _search(s, args.trials, args.epochs) for s in order}
        pair = {"order": list(order), **runs, "wall_ratio_none_over_asha": runs["none"]["wall_s"] / runs["asha"]["wall_s"],
                "cpu_ratio_none_over_asha": runs["none"]["cpu_s"] / runs["asha"]["cpu_s"]}
        pairs.append(pair)
        print(f"pair {i}: asha {runs['asha']['wall_s']:.1f} s ({runs['asha']['trials_pruned']} pruned, best "
              f"{runs['asha']['best_test_accuracy']:.3f}), none {runs['none']['wall_s']:.1f} s (best "
              f"{runs['none']['best_test_accuracy']:.3f}); load {runs[order[0]]['load_before']:.1f}", flush=True)
    median = {k: statistics.median(p[k] for p in pairs) for k in ("wall_ratio_none_over_asha", "cpu_ratio_none_over_asha")}
    write_results(ROOT / "benchmarks" / "results" / "tune_asha.json", "tune_asha",
                  workload=f"mlp [64] on sklearn:digits, {args.trials} trials x {args.epochs} epochs, lr loguniform "
                  "[1e-5, 1e-1], one trial at a time in this process", cpus=os.cpu_count(), pairs=pairs,
                  median=median, when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print(f"median none/asha: wall {median['wall_ratio_none_over_asha']:.2f}x, cpu {median['cpu_ratio_none_over_asha']:.2f}x")


if __name__ == "__main__":
    main()
