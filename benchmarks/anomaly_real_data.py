"""Anomaly detectors with their default settings on real data that scikit-learn ships (nothing is
downloaded): each labelled data set becomes an anomaly task by keeping one population as "normal"
and a small sample of another as the anomalies, as the ODDS collection does with UCI data.

* breast_cancer: 357 benign tumours normal, 36 malignant ones (10%) anomalous; 30 measurements
  on very different scales (areas in the thousands, smoothness near 0.1).
* wine: cultivars 1 and 2 normal (130), 12 of cultivar 3 anomalous; 13 chemical measurements.
* digits_0: 178 handwritten zeros normal, 18 other digits anomalous; 64 pixels of one unit.
* digits_rare_9: digits 0-8 normal (1,617), 90 nines anomalous: the anomalies are not outlying
  (each digit is a cluster of its own), a task on which no detector here should do well.

Per task, detector and seed (the split seed and the training seed): test ROC AUC through
gravityml's unsupervised paradigm with the defaults (``model.params`` empty), and with
``scale: none``. Results: benchmarks/results/anomaly_real_data.json.

    .venv/bin/python benchmarks/anomaly_real_data.py [--seeds 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import mean_sd, summary, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "anomaly_real_data.json"
DETECTORS = ("isolation_forest", "local_outlier_factor", "one_class_svm", "autoencoder")


def anomaly_task(name: str, seed: int = 0) -> pd.DataFrame:
    """Feature columns and ``anomaly`` (1 for the sampled minority), rows shuffled."""
    from sklearn import datasets

    loader, normal_of, n_anomalies = {
        "breast_cancer": (datasets.load_breast_cancer, lambda y: y == 1, 36),
        "wine": (datasets.load_wine, lambda y: y != 2, 12),
        "digits_0": (datasets.load_digits, lambda y: y == 0, 18),
        "digits_rare_9": (datasets.load_digits, lambda y: y != 9, 90),
    }[name]
    frame = loader(as_frame=True).frame
    normal = normal_of(frame.pop("target"))
    anomalies = frame[~normal].sample(n=n_anomalies, random_state=seed)
    out = pd.concat([frame[normal].assign(anomaly=0), anomalies.assign(anomaly=1)])
    return out.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def run_one(source: Path, model_type: str, params: dict[str, Any], seed: int, workdir: Path) -> tuple[float, float]:
    from gravityml.data import load_dataset
    from gravityml.paradigms import TrainContext, train
    from gravityml.spec import load_spec

    spec = load_spec(
        {
            "name": "bench",
            "task": "unsupervised",
            "data": {"source": str(source), "target": "anomaly", "split": {"test": 0.3, "seed": seed}},
            "model": {"type": model_type, "params": params},
            "train": {"seed": seed},
            "compute": {"accelerator": "cpu", "threads": 1},
        }
    )
    began = time.perf_counter()
    result = train(TrainContext(spec=spec, workdir=workdir, dataset=load_dataset(spec)))
    return result.metrics["test/roc_auc"], time.perf_counter() - began


def main() -> None:
    import warnings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 tasks (a smoke run)")
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    tasks = ("breast_cancer", "wine") if args.quick else ("breast_cancer", "wine", "digits_0", "digits_rare_9")
    warnings.simplefilter("ignore")  # chance-level warnings are expected on digits_rare_9
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            source = Path(tmp) / f"{task}.csv"
            anomaly_task(task).to_csv(source, index=False)
            for detector in DETECTORS:
                for scale in ("standard", "none"):
                    for seed in range(seeds):
                        workdir = Path(tmp) / f"{task}-{detector}-{scale}-{seed}"
                        workdir.mkdir()
                        params = {} if scale == "standard" else {"scale": "none"}
                        auc, seconds = run_one(source, detector, params, seed, workdir)
                        row = {"task": task, "detector": detector, "scale": scale, "seed": seed, "roc_auc": auc, "seconds": seconds}
                        rows.append(row)
                        print(json.dumps(row, default=lambda v: round(v, 4)), flush=True)
    table = []
    for task in tasks:
        for detector in DETECTORS:
            for scale in ("standard", "none"):
                chosen = [r for r in rows if (r["task"], r["detector"], r["scale"]) == (task, detector, scale)]
                table.append({"task": task, "detector": detector, "scale": scale, "seeds": len(chosen),
                              "roc_auc": summary([r["roc_auc"] for r in chosen]),
                              "seconds": summary([r["seconds"] for r in chosen])})
    write_results(
        RESULTS,
        "anomaly_real_data",
        datasets="scikit-learn's breast_cancer, wine, digits turned into anomaly tasks (see the docstring); 30% test split",
        settings="gravityml defaults (model.params empty), and scale: none",
        load_average=list(os.getloadavg()),
        summary=table,
        runs=rows,
    )
    print(f"\n{'task':<15} {'detector':<22} {'scale':<9} {'test ROC AUC':>15}")
    for e in table:
        print(f"{e['task']:<15} {e['detector']:<22} {e['scale']:<9} {mean_sd(e['roc_auc']):>15}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
