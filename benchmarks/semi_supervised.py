"""Semi-supervised benchmark: what unlabelled rows buy on sklearn:digits with few labels.

For 1, 2, 5 and 10 labels per class and several seeds, a CSV is written in which 40 rows per class
plus the chosen few keep their label and every other row is unlabelled; the job's stratified test
split takes exactly the 40 per class (400 test rows), so training sees k labels per class and
~1,400 unlabelled rows. Each gravityml run reports the semi-supervised model's test accuracy and the
same model trained on the labelled rows alone (``labelled_only/test/accuracy``); their difference
is ``semi_supervised/gain``. Methods: ``label_spreading`` (kNN graph, 7 neighbours) and
``pseudo_label`` around ``logistic_regression`` (threshold 0.9, 3 rounds).

Against the bare library: scikit-learn's LabelSpreading with the same settings on the same rows,
in the same run; the accuracies must agree and the time ratio (gravityml paradigm / bare fit +
predict) shows our overhead (preprocessing, the baseline fit, metrics, plots).

Results: benchmarks/results/semi_supervised.json.

    .venv/bin/python benchmarks/semi_supervised.py [--seeds 5] [--labels 1 2 5 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import mean_sd, summary, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "semi_supervised.json"
TEST_PER_CLASS = 40
METHODS: dict[str, dict[str, Any]] = {
    "label_spreading": {"type": "label_spreading", "params": {"kernel": "knn", "n_neighbors": 7, "scale": "none"}},
    "pseudo_label(logistic_regression)": {
        "type": "pseudo_label",
        "params": {"base": "logistic_regression", "threshold": 0.9, "rounds": 3},
    },
}


def digits_frame() -> pd.DataFrame:
    from gravityml.data import load_sklearn

    return load_sklearn("digits").frame


def few_labels(frame: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = frame["target"].to_numpy()
    keep = np.concatenate([rng.choice(np.flatnonzero(y == c), TEST_PER_CLASS + k, replace=False) for c in range(10)])
    out = frame.copy()
    out["target"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    out.loc[keep, "target"] = frame.loc[keep, "target"].astype("int64")
    return out


def run_ours(path: Path, k: int, seed: int, model: dict[str, Any], workdir: Path) -> tuple[dict[str, float], float]:
    from gravityml.data import load_dataset
    from gravityml.paradigms import TrainContext, train
    from gravityml.spec import load_spec

    n_labelled = 10 * (TEST_PER_CLASS + k)
    spec = load_spec(
        {
            "name": "bench",
            "task": "semi_supervised",
            # ceil(n * test) must be exactly 400: aim half a row below it.
            "data": {"source": str(path), "target": "target", "split": {"test": (10 * TEST_PER_CLASS - 0.5) / n_labelled, "seed": seed}},
            "model": model,
            "train": {"seed": seed},
            "compute": {"accelerator": "cpu", "threads": 1},
        }
    )
    began = time.perf_counter()
    result = train(TrainContext(spec=spec, workdir=workdir, dataset=load_dataset(spec)))
    return result.metrics, time.perf_counter() - began


def run_bare(frame: pd.DataFrame, labelled_train: pd.Index, test: pd.Index) -> tuple[float, float]:
    """scikit-learn's LabelSpreading alone on the same training rows and test rows."""
    from sklearn.semi_supervised import LabelSpreading

    features = [c for c in frame.columns if c != "target"]
    unlabelled = frame.index[frame["target"].isna()]
    train_index = labelled_train.append(unlabelled)
    y = np.full(len(train_index), -1)
    y[: len(labelled_train)] = frame.loc[labelled_train, "target"].astype(int)
    began = time.perf_counter()
    model = LabelSpreading(kernel="knn", n_neighbors=7, max_iter=1000).fit(frame.loc[train_index, features].to_numpy(float), y)
    accuracy = float((model.predict(frame.loc[test, features].to_numpy(float)) == frame.loc[test, "target"].astype(int)).mean())
    return accuracy, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labels", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--quick", action="store_true", help="2 seeds, labels 5 only (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.labels = 2, [5]
    base = digits_frame()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.labels:
            for seed in range(args.seeds):
                frame = few_labels(base, k, seed)
                path = Path(tmp) / f"digits_{k}_{seed}.csv"
                frame.to_csv(path, index=False)
                for name, model in METHODS.items():
                    workdir = Path(tmp) / f"w_{k}_{seed}_{name}"
                    workdir.mkdir()
                    metrics, seconds = run_ours(path, k, seed, model, workdir)
                    row = {
                        "labels_per_class": k,
                        "seed": seed,
                        "method": name,
                        "accuracy": metrics["test/accuracy"],
                        "labelled_only_accuracy": metrics["labelled_only/test/accuracy"],
                        "gain": metrics["semi_supervised/gain"],
                        "labelled_rows": metrics["data/labelled_rows"],
                        "unlabelled_rows": metrics["data/unlabelled_rows"],
                        "test_rows": metrics["data/test_rows"],
                        "seconds": seconds,
                    }
                    if name == "label_spreading":
                        row.update(_bare_row(frame, path, k, seed))
                        row["time_ratio_ours_over_bare"] = seconds / row["bare_seconds"]
                    rows.append(row)
                    print(json.dumps({k2: round(v, 4) if isinstance(v, float) else v for k2, v in row.items()}), flush=True)
    table = []
    for k in args.labels:
        for name in METHODS:
            chosen = [r for r in rows if r["labels_per_class"] == k and r["method"] == name]
            entry = {
                "labels_per_class": k,
                "method": name,
                "seeds": len(chosen),
                "accuracy": summary([r["accuracy"] for r in chosen]),
                "labelled_only_accuracy": summary([r["labelled_only_accuracy"] for r in chosen]),
                "gain": summary([r["gain"] for r in chosen]),
            }
            if name == "label_spreading":
                entry["bare_accuracy"] = summary([r["bare_accuracy"] for r in chosen])
                entry["time_ratio_ours_over_bare"] = summary([r["time_ratio_ours_over_bare"] for r in chosen])
            table.append(entry)
    write_results(
        RESULTS,
        "semi_supervised",
        dataset="sklearn:digits (1,797 rows; 400 labelled test rows per run)",
        summary=table,
        runs=rows,
    )
    print(f"\n{'labels/class':>12} {'method':<34} {'accuracy':>16} {'labelled only':>16} {'gain':>16}")
    for e in table:
        print(
            f"{e['labels_per_class']:>12} {e['method']:<34} {mean_sd(e['accuracy']):>16}"
            f" {mean_sd(e['labelled_only_accuracy']):>16} {mean_sd(e['gain']):>16}"
        )
    print(f"wrote {RESULTS}")


def _bare_row(frame: pd.DataFrame, path: Path, k: int, seed: int) -> dict[str, float]:
    """The bare library on exactly the rows gravityml trained and tested on (same split call)."""
    from gravityml.data import load_dataset
    from gravityml.spec import load_spec

    n_labelled = 10 * (TEST_PER_CLASS + k)
    spec = load_spec(
        {
            "name": "bench",
            "task": "semi_supervised",
            "data": {"source": str(path), "target": "target", "split": {"test": (10 * TEST_PER_CLASS - 0.5) / n_labelled, "seed": seed}},
            "model": METHODS["label_spreading"],
        }
    )
    split = load_dataset(spec).split()
    accuracy, seconds = run_bare(frame, split.train.index, split.test.index)
    return {"bare_accuracy": accuracy, "bare_seconds": seconds}


if __name__ == "__main__":
    main()
