"""Anomaly-detection benchmark: each detector on the labelled telemetry set (examples/data/
telemetry.csv: 6,000 rows, 3% injected aberrant behaviour of four kinds), label used only to score.

Per detector (isolation_forest, local_outlier_factor, one_class_svm, autoencoder) and seed, through
gravityml's unsupervised paradigm with the examples' settings: test ROC AUC, average precision,
precision@k (k = true anomalies in the test split), and at the saved threshold (a 3% flag rate):
precision, recall, false-positive rate, and recall per kind of injected behaviour.

Against the bare library: scikit-learn's IsolationForest on the same standardised training rows,
same seed, in the same run: ROC AUC must agree, and the time ratio shows our overhead
(preprocessing, threshold, metrics, plots).

Results: benchmarks/results/anomaly.json.

    .venv/bin/python benchmarks/anomaly.py [--seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import mean_sd, summary, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "anomaly.json"
DATA = ROOT / "examples" / "data" / "telemetry.csv"
DETECTORS: dict[str, dict[str, Any]] = {
    "isolation_forest": {"model": {"type": "isolation_forest", "params": {"n_estimators": 300, "contamination": 0.03}}},
    "local_outlier_factor": {"model": {"type": "local_outlier_factor", "params": {"contamination": 0.03}}},
    "one_class_svm": {"model": {"type": "one_class_svm", "params": {"contamination": 0.03}}},
    "autoencoder": {
        "model": {"type": "autoencoder", "params": {"hidden": [16], "code": 3, "contamination": 0.03}},
        "train": {"epochs": 30, "batch_size": 256, "lr": 3.0e-3},
    },
}
SCORES = ("roc_auc", "average_precision", "precision_at_k", "precision", "recall", "false_positive_rate")


def run_ours(name: str, seed: int, workdir: Path) -> tuple[Any, dict[str, float], float]:
    from gravityml.data import load_dataset
    from gravityml.paradigms import TrainContext, train
    from gravityml.spec import load_spec

    setting = DETECTORS[name]
    spec = load_spec(
        {
            "name": "bench",
            "task": "unsupervised",
            "data": {"source": str(DATA), "target": "injected", "drop": ["host", "anomaly_kind"]},
            "model": setting["model"],
            "train": {**setting.get("train", {}), "seed": seed},
            "compute": {"accelerator": "cpu", "threads": 1},
        }
    )
    dataset = load_dataset(spec)
    began = time.perf_counter()
    result = train(TrainContext(spec=spec, workdir=workdir, dataset=dataset))
    seconds = time.perf_counter() - began
    return (result.model, dataset.split(pd.Series(True, index=dataset.frame.index))), result.metrics, seconds


def per_kind_recall(model: Any, test: pd.DataFrame, raw: pd.DataFrame) -> dict[str, float]:
    flagged = model.predict(test)["is_anomaly"]
    kinds = raw.loc[test.index, "anomaly_kind"]
    return {kind: float(flagged[kinds == kind].mean()) for kind in sorted(set(kinds) - {"normal"})}


def run_bare(split: Any, seed: int) -> tuple[float, float]:
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    features = [c for c in split.train.columns if c != "injected"]
    began = time.perf_counter()
    scaler = StandardScaler().fit(split.train[features])
    forest = IsolationForest(n_estimators=300, random_state=seed, n_jobs=-1).fit(scaler.transform(split.train[features]))
    score = -forest.score_samples(scaler.transform(split.test[features]))
    seconds = time.perf_counter() - began
    return float(roc_auc_score(split.test["injected"], score)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 seed (a smoke run)")
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    raw = pd.read_csv(DATA)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in DETECTORS:
            for seed in range(seeds):
                workdir = Path(tmp) / f"{name}-{seed}"
                workdir.mkdir()
                (model, split), metrics, seconds = run_ours(name, seed, workdir)
                row: dict[str, Any] = {"detector": name, "seed": seed, "seconds": seconds}
                row.update({key: metrics[f"test/{key}"] for key in SCORES})
                row["recall_by_kind"] = per_kind_recall(model, split.test[model.schema.feature_names], raw)
                if name == "isolation_forest":
                    row["bare_roc_auc"], row["bare_seconds"] = run_bare(split, seed)
                    row["time_ratio_ours_over_bare"] = seconds / row["bare_seconds"]
                rows.append(row)
                print(json.dumps(row, default=lambda v: round(v, 4)), flush=True)
    table = []
    for name in DETECTORS:
        chosen = [r for r in rows if r["detector"] == name]
        entry: dict[str, Any] = {"detector": name, "seeds": len(chosen)}
        entry.update({key: summary([r[key] for r in chosen]) for key in SCORES})
        kinds = chosen[0]["recall_by_kind"]
        entry["recall_by_kind"] = {k: statistics.fmean(r["recall_by_kind"][k] for r in chosen) for k in kinds}
        entry["seconds"] = summary([r["seconds"] for r in chosen])
        if name == "isolation_forest":
            entry["bare_roc_auc"] = summary([r["bare_roc_auc"] for r in chosen])
            entry["time_ratio_ours_over_bare"] = summary([r["time_ratio_ours_over_bare"] for r in chosen])
        table.append(entry)
    write_results(
        RESULTS,
        "anomaly",
        dataset="examples/data/telemetry.csv (6,000 rows, 180 injected anomalies; 20% test split)",
        threshold="contamination 0.03 (3% of training rows flagged)",
        summary=table,
        runs=rows,
    )
    print(f"\n{'detector':<22} {'ROC AUC':>15} {'AP':>15} {'P@k':>15} {'recall':>8} {'FPR':>8}")
    for e in table:
        print(f"{e['detector']:<22} {mean_sd(e['roc_auc']):>15} {mean_sd(e['average_precision']):>15} {mean_sd(e['precision_at_k']):>15}"
              f" {e['recall']['mean']:>8.3f} {e['false_positive_rate']['mean']:>8.3f}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
