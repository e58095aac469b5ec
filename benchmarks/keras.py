"""Keras on TensorFlow against torch, and the platform's Keras loop against a bare ``model.fit``.

Two questions, on the same rows (one spec, split and encoded once by the platform's ``prepare``, so
both frameworks train on the same training rows and are scored on the same test rows):

1. **Keras vs torch**: the built-in network trained by the platform on each framework
   (``fit_keras``: ``model.fit`` with the platform's callback and per-epoch checkpoints;
   ``fit_prepared``: the torch loop with its checkpoints), same architecture, optimiser (AdamW),
   learning rate, batch size, epochs and seed; training samples per wall-clock second and per
   CPU-second of the process, and test accuracy. fp32 and bf16 (Keras' ``mixed_bfloat16`` policy,
   torch's bf16 autocast).
2. **Platform vs bare Keras**: ``fit_keras`` against what a person writes by hand: build the same
   network, ``compile`` with the same optimiser and loss, ``model.fit(X, y, ...)`` with no callback
   and no checkpoint. Same seed, same network (the platform's builder, so the same layers).

Each comparison runs as alternating pairs in one process (torch then Keras, ours then bare) so a
noisy machine slows both sides alike; every pair is kept with the 1-minute load average read before
it, and the median ratio is the number to quote. One intra-op and one inter-op thread on both
frameworks (``--threads``): CPU-seconds then measure work even while other jobs share the cores.

Workloads: ``mlp``, the MLP 64-256-128-10 on a synthetic 20,000 x 64 table (10 overlapping Gaussian
classes, seeded numpy; nothing downloaded), batch 256; ``cnn``, the residual CNN (32 channels, 2 blocks)
on scikit-learn's 8x8 digits, batch 64; ``text``, examples/spam.yaml's text network (the platform's
tokenizer and vocabulary, embedding 32, mean over tokens, hidden 32) on examples/data/spam.csv,
batch 64, lr 5e-3.

    .venv/bin/python benchmarks/keras.py [--repeats 5] [--epochs 3] [--only mlp] [--threads 1]

Results: benchmarks/results/keras.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# This file is keras.py: with its folder on sys.path (python puts it first), `import keras` would import it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
_spec = importlib.util.spec_from_file_location("_results", ROOT / "benchmarks" / "_results.py")
assert _spec is not None and _spec.loader is not None
_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_results)
write_results = _results.write_results

RESULTS = ROOT / "benchmarks" / "results" / "keras.json"
LR = 1e-3
WORKLOADS = ("mlp", "cnn", "text")
SEED = 3


def _frame(name: str) -> tuple[pd.DataFrame, dict[str, Any], int, dict[str, Any], float]:
    """The workload's rows (features + ``label``), its model section, batch size, data keys, lr."""
    if name == "text":  # examples/spam.yaml's network and loop, on the shipped messages
        frame = pd.read_csv(ROOT / "examples" / "data" / "spam.csv")
        return frame, {"type": "text", "params": {"dim": 32, "hidden": 32, "max_tokens": 64}}, 64, {"text": "text"}, 5e-3
    if name == "mlp":
        rng = np.random.default_rng(0)
        centers = rng.normal(size=(10, 64)) * 0.3  # overlapping: logistic regression scores 0.77
        y = rng.integers(0, 10, size=20_000)
        X = centers[y] + rng.normal(size=(20_000, 64))
        frame = pd.DataFrame(X.astype("float32"), columns=[f"x{i}" for i in range(64)])
        frame["label"] = y
        return frame, {"type": "mlp", "params": {"hidden": [256, 128], "dropout": 0.1}}, 256, {}, LR
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(digits.data.astype("float32"), columns=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)])
    frame["label"] = digits.target
    return frame, {"type": "cnn", "params": {"channels": 32, "blocks": 2, "dropout": 0.1}}, 64, {}, LR


def prepared(name: str, folder: Path, epochs: int, threads: int) -> dict[str, Any]:
    """The spec (on each framework) and the rows the platform prepared from it, once."""
    from gravityml.data import load_dataset
    from gravityml.paradigms.deep._train import prepare
    from gravityml.spec import load_spec

    frame, model, batch, data, lr = _frame(name)
    frame.to_parquet(folder / f"{name}.parquet")
    doc: dict[str, Any] = {
        "name": f"bench-{name}",
        "task": "supervised",
        "data": {"source": str(folder / f"{name}.parquet"), "target": "label", "split": {"test": 0.2, "seed": 0}, **data},
        "model": model,
        "train": {"epochs": epochs, "batch_size": batch, "lr": lr, "seed": SEED},
        "compute": {"accelerator": "cpu", "precision": "fp32", "threads": threads},
    }
    specs = {fw: load_spec({**doc, "model": {**model, "framework": fw}}) for fw in ("torch", "tensorflow")}
    dataset = load_dataset(specs["torch"])
    prep = prepare(specs["torch"], dataset)
    index = {c: i for i, c in enumerate(prep.schema.classes or ())}
    y_test = np.array([index[v.item() if hasattr(v, "item") else v] for v in prep.y_test], dtype="int64")
    return {"specs": specs, "prep": prep, "X_test": _net_input(prep.encoder.transform(prep.test_frame)),
            "y_test": y_test, "batch_size": batch, "epochs": epochs, "lr": lr}


def _net_input(X: np.ndarray) -> np.ndarray:
    """Token ids stay int64; numbers go in as float32."""
    return X if X.dtype == np.int64 else X.astype("float32")


def _with_precision(spec: Any, precision: str) -> Any:
    return spec.model_copy(update={"compute": spec.compute.model_copy(update={"precision": precision})})


def _timed(run: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _row(work: dict[str, Any], out: Any, wall: float, cpu: float, score: Any, history: list[dict[str, float]] | None = None) -> dict[str, float]:
    """Whole-call rates (building, tracing, every epoch, checkpoints) and, from the loop's own
    history, the last epoch's samples per second (the steady state, after Keras' tracing)."""
    samples = work["epochs"] * len(work["prep"].X_train)
    row = {"wall_s": wall, "cpu_s": cpu, "samples_per_s": samples / wall, "samples_per_cpu_s": samples / cpu,
           "test_accuracy": float((np.argmax(score(out), axis=1) == work["y_test"]).mean())}
    if history:
        row["last_epoch_samples_per_s"] = float(history[-1]["time/samples_per_s"])
    return row


def torch_platform(work: dict[str, Any], precision: str) -> dict[str, float]:
    import torch

    from gravityml.paradigms import TrainContext
    from gravityml.paradigms.deep._train import fit_prepared

    spec = _with_precision(work["specs"]["torch"], precision)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = TrainContext(spec=spec, workdir=Path(tmp), checkpoint_dir=Path(tmp))
        fit, wall, cpu = _timed(lambda: fit_prepared(ctx, work["prep"], precision))

    def score(fit: Any) -> np.ndarray:
        net = fit.network.eval().float()
        with torch.no_grad():
            return net(torch.from_numpy(work["X_test"])).numpy()

    return _row(work, fit, wall, cpu, score, fit.history)


def keras_platform(work: dict[str, Any], precision: str) -> dict[str, float]:
    from gravityml.paradigms import TrainContext
    from gravityml.paradigms.deep._keras import fit_keras

    spec = _with_precision(work["specs"]["tensorflow"], precision)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = TrainContext(spec=spec, workdir=Path(tmp), checkpoint_dir=Path(tmp))
        (network, state), wall, cpu = _timed(lambda: fit_keras(ctx, work["prep"], dict(work["prep"].config), precision))
    return _row(work, network, wall, cpu, lambda net: np.asarray(net(work["X_test"], training=False), dtype="float64"), state.history)


def keras_bare(work: dict[str, Any], precision: str) -> dict[str, float]:
    """What a person writes: the same network, compile, ``model.fit``; no callback, no checkpoint."""
    import tensorflow as tf

    from gravityml.models._keras import build_keras_network, dtype_policy, keras_module, set_standardize
    from gravityml.paradigms.deep._train import _stats

    keras = keras_module()
    prep, cfg = work["prep"], work["specs"]["tensorflow"].train

    def run() -> Any:
        keras.utils.set_random_seed(SEED)
        with tf.device("/CPU:0"), dtype_policy(precision):
            net = build_keras_network(dict(prep.config))
            if prep.arch != "text":
                set_standardize(net, *_stats(prep.arch, prep.X_train))
            net.compile(optimizer=keras.optimizers.AdamW(learning_rate=work["lr"], weight_decay=cfg.weight_decay),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            net.fit(_net_input(prep.X_train), prep.y_train, batch_size=work["batch_size"], epochs=work["epochs"],
                    shuffle=True, verbose=0)
        return net

    net, wall, cpu = _timed(run)
    return _row(work, net, wall, cpu, lambda n: np.asarray(n(work["X_test"], training=False), dtype="float64"))


def pairs(first: Any, second: Any, repeats: int) -> dict[str, Any]:
    """``repeats`` alternating (first, second) runs, each pair with the load average before it."""
    runs = []
    for _ in range(repeats):
        load = os.getloadavg()[0]
        runs.append({"load_average_1m": load, "a": first(), "b": second()})
    keys = [k for k in ("samples_per_s", "samples_per_cpu_s", "last_epoch_samples_per_s") if k in runs[0]["a"] and k in runs[0]["b"]]
    ratio = {c: statistics.median(r["b"][c] / r["a"][c] for r in runs) for c in keys}
    return {
        "pairs": runs,
        "median_ratio_b_over_a": ratio,
        "median": {side: {k: statistics.median(r[side][k] for r in runs) for k in runs[0][side]} for side in ("a", "b")},
        "load_average_1m": {"min": min(r["load_average_1m"] for r in runs), "max": max(r["load_average_1m"] for r in runs)},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=list(WORKLOADS), action="append",
                        help="run only these workloads (the others' results in keras.json are kept)")
    parser.add_argument("--precisions", default="fp32,bf16", help="Keras vs torch at these (comma-separated)")
    args = parser.parse_args()
    import tensorflow as tf
    import torch

    from gravityml.compute import configure_threads, cpu_has_fast_bf16, cpu_name, resolve_device
    from gravityml.models._keras import keras_module

    keras = keras_module()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    configure_threads(resolve_device("cpu"), args.threads)
    load_before = list(os.getloadavg())
    results: dict[str, Any] = {}
    if args.only and RESULTS.exists():  # keep the workloads not rerun, each with the load it ran at
        results = json.loads(RESULTS.read_text()).get("results", {})
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or WORKLOADS:
            work = prepared(name, Path(tmp), args.epochs, args.threads)
            keras_bare(work, "fp32")  # warm-up: TensorFlow's and oneDNN's first-use costs
            torch_platform(work, "fp32")
            entry: dict[str, Any] = {"train_rows": len(work["prep"].X_train), "test_rows": len(work["y_test"]),
                                     "batch_size": work["batch_size"], "epochs": args.epochs, "repeats": args.repeats,
                                     "network": work["prep"].config}
            for precision in args.precisions.split(","):
                found = pairs(lambda p=precision, w=work: torch_platform(w, p), lambda p=precision, w=work: keras_platform(w, p), args.repeats)
                entry[f"keras_vs_torch_{precision}"] = {"a": "torch (platform loop)", "b": "keras (platform loop)", **found}
                med = found["median"]
                print(f"{name} {precision}: keras/torch samples per s {found['median_ratio_b_over_a']['samples_per_s']:.3f}"
                      f" (per CPU-s {found['median_ratio_b_over_a']['samples_per_cpu_s']:.3f}, last epoch"
                      f" {found['median_ratio_b_over_a']['last_epoch_samples_per_s']:.3f}); test accuracy torch"
                      f" {med['a']['test_accuracy']:.3f}, keras {med['b']['test_accuracy']:.3f}; load"
                      f" {found['load_average_1m']['min']:.1f}-{found['load_average_1m']['max']:.1f}", flush=True)
            found = pairs(lambda w=work: keras_bare(w, "fp32"), lambda w=work: keras_platform(w, "fp32"), args.repeats)
            ratio = found["median_ratio_b_over_a"]
            entry["platform_vs_bare_fit_fp32"] = {"a": "bare model.fit", "b": "platform fit_keras", **found,
                                                  "overhead_wall": 1.0 / ratio["samples_per_s"] - 1.0,
                                                  "overhead_cpu": 1.0 / ratio["samples_per_cpu_s"] - 1.0}
            print(f"{name}: platform/bare model.fit samples per s {ratio['samples_per_s']:.3f} (per CPU-s"
                  f" {ratio['samples_per_cpu_s']:.3f}); load {found['load_average_1m']['min']:.1f}-"
                  f"{found['load_average_1m']['max']:.1f}", flush=True)
            results[name] = entry
    write_results(
        RESULTS, "keras", cpu=cpu_name(), cores=len(os.sched_getaffinity(0)), threads=args.threads,
        cpu_has_fast_bf16=cpu_has_fast_bf16(), tensorflow=tf.__version__, keras=keras.__version__,
        torch=torch.__version__, repeats=args.repeats, load_average_before=load_before,
        load_average_after=list(os.getloadavg()), results=results,
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
