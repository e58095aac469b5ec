"""Training-loop overhead: gravityml's ``fit_torch`` against a bare hand-written PyTorch loop.

Same network (same seed, so the same initial weights), same data, batch size, optimiser (AdamW),
precision and epochs; measured in the same process, alternating ours and bare ``--repeats`` times
so that a noisy machine slows both alike. Ours does everything a real run does per epoch: its own
shuffling generator, per-epoch metrics to a sink, and an atomic checkpoint (model, optimiser,
scaler, RNG states) written to disk. The bare loop does none of that.

Workloads: an MLP on a synthetic 20,000 x 64 table (10 classes, seeded numpy; nothing downloaded)
and the residual CNN of examples/digits_cnn.yaml on scikit-learn's 8x8 digits. Then gravityml's
throughput at fp64, fp32 and bf16 for both. Results: benchmarks/results/train_overhead.json.

Those two networks are too small for the matrix units to matter. ``compute_bound`` is an MLP
1024-2048-2048-10 at batch 512 on one thread (about 38 MFLOP per training sample): ours against
bare at fp32 and at bf16 autocast, alternating pairs, as a fraction of a measured matrix-product
peak (a short ``torch.mm`` probe at each precision); then ``precision: auto`` on the same network
and data, to check that it picks bf16 where bf16 is faster and as accurate.

    .venv/bin/python benchmarks/train_overhead.py [--repeats 5] [--epochs 2] [--threads 1] [--only compute_bound]

Throughput is reported per wall-clock second and per CPU-second of the process. With one thread
(the default) CPU-seconds measure the work done even when other jobs share the cores; wall-clock
ratios are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import write_results  # noqa: E402

from gravityml.compute import configure_threads, cpu_has_fast_bf16, cpu_name, precision_policy, resolve_device  # noqa: E402
from gravityml.models._nets import DEFAULTS, build_network  # noqa: E402
from gravityml.paradigms import TrainContext  # noqa: E402
from gravityml.paradigms.deep import fit_torch, seed_everything  # noqa: E402
from gravityml.spec import load_spec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "train_overhead.json"


def workloads() -> dict[str, dict[str, Any]]:
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(10, 64)) * 2.0
    y = rng.integers(0, 10, size=20_000)
    X = (centers[y] + rng.normal(size=(20_000, 64))).astype("float32")
    digits = load_digits()
    return {
        "mlp": {
            "X": X,
            "y": y.astype("int64"),
            "config": {"arch": "mlp", "params": {**DEFAULTS["mlp"], "hidden": [256, 128]}, "n_inputs": 64, "n_outputs": 10},
            "batch_size": 256,
        },
        "cnn": {
            "X": digits.data.astype("float32"),
            "y": digits.target.astype("int64"),
            "config": {"arch": "cnn", "params": DEFAULTS["cnn"], "shape": [1, 8, 8], "n_outputs": 10},
            "batch_size": 64,
        },
    }


#: The compute-bound MLP: 1024 inputs, two hidden layers of 2048, 10 classes, batch 512.
WIDE = (1024, 2048, 2048, 10)


def compute_bound_workload(rows: int = 4096) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(10, WIDE[0])).astype("float32")
    y = rng.integers(0, 10, size=rows)
    X = (centers[y] + 2.0 * rng.normal(size=(rows, WIDE[0]))).astype("float32")
    config = {"arch": "mlp", "params": {"hidden": list(WIDE[1:-1]), "dropout": 0.0}, "n_inputs": WIDE[0], "n_outputs": WIDE[-1]}
    return {"X": X, "y": y.astype("int64"), "config": config, "batch_size": 512}


def train_flop_per_sample() -> float:
    """Forward 2 x weights, backward 4 x weights (input and weight gradients) multiply-adds as FLOP."""
    weights = sum(a * b for a, b in zip(WIDE[:-1], WIDE[1:]))
    return 6.0 * weights


def matmul_peak_gflops(precision: str, n: int = 2048, seconds: float = 1.0) -> float:
    """GFLOP/s of an n x n matrix product at fp32, or under bf16 autocast, on this thread count."""
    policy = precision_policy(precision, resolve_device("cpu"))
    a, b = torch.randn(n, n), torch.randn(n, n)
    with policy.autocast():
        torch.mm(a, b)  # warm-up: kernel selection
        best, began = 0.0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            start = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def auto_choice(work: dict[str, Any], threads: int) -> dict[str, Any]:
    """What ``precision: auto`` decides for this network and data (the slice and epochs it uses)."""
    import pandas as pd

    from gravityml.data import load_dataset
    from gravityml.paradigms.deep._precision import AUTO_EPOCHS, AUTO_ROWS, compare_training

    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.DataFrame(work["X"], columns=[f"x{i}" for i in range(work["X"].shape[1])])
        frame["label"] = work["y"]
        frame.to_parquet(Path(tmp) / "wide.parquet")
        spec = load_spec(
            {
                "name": "wide",
                "task": "supervised",
                "data": {"source": str(Path(tmp) / "wide.parquet"), "target": "label", "split": {"test": 0.25, "seed": 0}},
                "model": {"type": "mlp", "params": work["config"]["params"]},
                "train": {"epochs": AUTO_EPOCHS, "batch_size": work["batch_size"], "lr": 1e-3, "seed": 3},
                "compute": {"accelerator": "cpu", "precision": "auto", "threads": threads},
            }
        )
        dataset = load_dataset(spec)
        began = time.perf_counter()
        report = compare_training(TrainContext(spec=spec, workdir=Path(tmp), dataset=dataset), dataset, max_rows=AUTO_ROWS, epochs=AUTO_EPOCHS)
        rows = {r.precision: {"accuracy": r.metric, "samples_per_s": r.samples_per_s, "seconds": r.seconds} for r in report.rows}
        return {
            "chosen": report.recommended,
            "reason": report.reason,
            "rows": rows,
            "probes": {p.precision: p.samples_per_s for p in report.probes},
            "skipped": report.skipped,
            "seconds": time.perf_counter() - began,
        }


def compute_bound(repeats: int, epochs: int, threads: int) -> dict[str, Any]:
    work = compute_bound_workload()
    flop = train_flop_per_sample()
    bare(work, "fp32", 1, threads)  # warm-up
    entry: dict[str, Any] = {
        "network": "-".join(map(str, WIDE)), "rows": len(work["X"]), "batch_size": work["batch_size"], "epochs": epochs,
        "train_flop_per_sample": flop,
    }
    for precision in ("fp32", "bf16"):
        peak = matmul_peak_gflops(precision)
        pairs = [(ours(work, precision, epochs, threads), bare(work, precision, epochs, threads)) for _ in range(repeats)]
        ours_wall = statistics.median(o["wall"] for o, _ in pairs)
        bare_wall = statistics.median(b["wall"] for _, b in pairs)
        entry[precision] = {
            "pairs": pairs,
            "ratio_wall_median": statistics.median(o["wall"] / b["wall"] for o, b in pairs),
            "ratio_cpu_median": statistics.median(o["cpu"] / b["cpu"] for o, b in pairs),
            "ours_wall_median": ours_wall,
            "bare_wall_median": bare_wall,
            "matmul_peak_gflops": peak,
            "ours_gflops": ours_wall * flop / 1e9,
            "ours_fraction_of_peak": ours_wall * flop / 1e9 / peak,
            "bare_fraction_of_peak": bare_wall * flop / 1e9 / peak,
        }
        row = entry[precision]
        print(
            f"compute_bound {precision}: ours/bare {row['ratio_wall_median']:.3f} wall ({row['ratio_cpu_median']:.3f} CPU-s); "
            f"ours {ours_wall:,.0f} samples/s = {row['ours_gflops']:.0f} GFLOP/s, {row['ours_fraction_of_peak']:.0%} of the "
            f"{peak:.0f} GFLOP/s matmul peak",
            flush=True,
        )
    entry["bf16_vs_fp32_wall"] = entry["bf16"]["ours_wall_median"] / entry["fp32"]["ours_wall_median"]
    entry["auto"] = auto_choice(work, threads)
    print(f"compute_bound precision: auto -> {entry['auto']['chosen']} ({entry['auto']['reason']})", flush=True)
    return entry


def network(config: dict[str, Any], seed: int) -> torch.nn.Module:
    seed_everything(seed)
    return build_network(config)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _rates(samples: int, start: tuple[float, float]) -> dict[str, float]:
    """Samples per wall-clock second, and per CPU-second of this process (stable on a busy machine)."""
    wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    return {"wall": samples / wall, "cpu": samples / cpu}


def ours(work: dict[str, Any], precision: str, epochs: int, threads: int) -> dict[str, float]:
    spec = load_spec(
        {
            "name": "bench",
            "task": "supervised",
            "data": {"source": "sklearn:iris", "target": "target"},
            "model": {"type": work["config"]["arch"]},
            "train": {"epochs": epochs, "batch_size": work["batch_size"], "lr": 1e-3, "seed": 3},
            "compute": {"accelerator": "cpu", "precision": precision, "threads": threads},
        }
    )
    net = network(work["config"], 3)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = TrainContext(spec=spec, workdir=Path(tmp), checkpoint_dir=Path(tmp))
        began = _clock()
        fit_torch(ctx, net, work["X"], work["y"], precision=precision)
        return _rates(epochs * len(work["X"]), began)


def bare(work: dict[str, Any], precision: str, epochs: int, threads: int) -> dict[str, float]:
    """The loop a person writes by hand: shuffle, forward under autocast, loss, backward, step."""
    torch.set_num_threads(threads)
    policy = precision_policy(precision, resolve_device("cpu"))
    dtype = policy.torch_param_dtype()
    began = _clock()
    net = network(work["config"], 3).to(dtype)
    X = torch.from_numpy(work["X"]).to(dtype)
    y = torch.from_numpy(work["y"])
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = work["batch_size"]
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(X))
        for start in range(0, len(X), batch):
            idx = order[start : start + batch]
            with policy.autocast():
                out = net(X[idx])
            loss = loss_fn(out.to(dtype), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return _rates(epochs * len(X), began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="1: CPU-seconds then measure work, not contention")
    parser.add_argument("--only", choices=["mlp", "cnn", "compute_bound"], action="append", help="run only these workloads")
    args = parser.parse_args()
    threads = configure_threads(resolve_device("cpu"), args.threads)
    load_before = os.getloadavg()[0]
    wanted = set(args.only or ("mlp", "cnn", "compute_bound"))
    results: dict[str, Any] = {}
    if RESULTS.exists() and args.only:  # keep the workloads not rerun, each with its own load average
        previous = json.loads(RESULTS.read_text())
        results = previous.get("results", {})
        for entry in results.values():
            entry.setdefault("load_average_before", previous.get("load_average_before"))
            entry.setdefault("load_average_after", previous.get("load_average_after"))
    for name, work in workloads().items():
        if name not in wanted:
            continue
        bare(work, "fp32", 1, threads)  # warm-up: oneDNN builds its kernels on first use
        pairs = [(ours(work, "fp32", args.epochs, threads), bare(work, "fp32", args.epochs, threads)) for _ in range(args.repeats)]
        entry: dict[str, Any] = {"rows": len(work["X"]), "batch_size": work["batch_size"], "epochs": args.epochs, "pairs": pairs}
        for clock in ("cpu", "wall"):
            ratios = [o[clock] / b[clock] for o, b in pairs]
            entry[f"ratio_{clock}_median"] = statistics.median(ratios)
            entry[f"ours_{clock}_median"] = statistics.median(o[clock] for o, _ in pairs)
            entry[f"bare_{clock}_median"] = statistics.median(b[clock] for _, b in pairs)
        by_precision: dict[str, Any] = {}
        for precision in ("fp64", "fp32", "bf16"):
            runs = [ours(work, precision, args.epochs, threads) for _ in range(max(2, args.repeats // 2 + 1))]
            by_precision[precision] = {f"{c}_median": statistics.median(r[c] for r in runs) for c in ("cpu", "wall")}
        for row in by_precision.values():
            row["cpu_vs_fp32"] = row["cpu_median"] / by_precision["fp32"]["cpu_median"]
            row["wall_vs_fp32"] = row["wall_median"] / by_precision["fp32"]["wall_median"]
        entry["precision"] = by_precision
        results[name] = entry
        print(
            f"{name}: ours/bare samples per CPU-s {entry['ratio_cpu_median']:.3f} (wall {entry['ratio_wall_median']:.3f}); "
            + ", ".join(f"{p} {v['cpu_median']:,.0f}/CPU-s ({v['cpu_vs_fp32']:.2f}x, wall {v['wall_vs_fp32']:.2f}x)" for p, v in by_precision.items()),
            flush=True,
        )
    if "compute_bound" in wanted:
        load_cb = os.getloadavg()
        results["compute_bound"] = compute_bound(args.repeats, args.epochs, threads)
        results["compute_bound"]["load_average_before"] = list(load_cb)
        results["compute_bound"]["load_average_after"] = list(os.getloadavg())
    write_results(
        RESULTS,
        "train_overhead",
        cpu=cpu_name(),
        threads=threads,
        cpu_has_fast_bf16=cpu_has_fast_bf16(),
        load_average_before=load_before,
        load_average_after=os.getloadavg()[0],
        torch=torch.__version__,
        results=results,
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
