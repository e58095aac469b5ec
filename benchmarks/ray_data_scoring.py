"""Ray Data batch scoring (`predict --site`'s driver) against single-process `gravityml predict`, same rows.

A logistic regression is trained here (embedded workspace in a temporary folder); N rows are
written as 8 Parquet files for Ray Data and as one Parquet file for `predict_file` (the code of
`gravityml predict`). Ray runs in this process as a local one-node cluster (`ray.init(num_cpus=C)`,
started once, not timed); each Ray Data run is the driver code of a site's batch job
(`score_on_cluster`: read tasks, an actor pool, write under `_tmp-`, row-count check, publish,
`_SUCCESS`). Pairs alternate which goes first; the load average is recorded with each pair.
Results: benchmarks/results/ray_data_scoring.json.

    .venv/bin/python benchmarks/ray_data_scoring.py [--rows 400000] [--pairs 2] [--cpus 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ray_data_scoring.json"


def rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n), "x1": rng.normal(size=n), "x2": rng.normal(size=n)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gml-raydata-bench-"))
    os.environ["GRAVITYML_HOME"] = str(tmp / "ws")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    # A new local ray.init() would otherwise turn on token auth and save ~/.ray/auth_token, which every
    # later `ray start --head` of this user then enforces (the test harnesses' clusters among them).
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import ray

    from gravityml.data import local_catalog
    from gravityml.execution import run_job
    from gravityml.execution._raydata import BatchJob, score_on_cluster
    from gravityml.inference import predict_file

    train = rows(2000, 1).drop(columns=["id"])
    train["target"] = np.where(train["x1"] + 0.5 * train["x2"] > 0, "yes", "no")
    train.to_csv(tmp / "train.csv", index=False)
    spec = {"name": "bench-scorer", "task": "supervised",
            "data": {"source": str(tmp / "train.csv"), "target": "target", "split": {"test": 0.25, "seed": 3}},
            "model": {"type": "logistic_regression"}, "compute": {"accelerator": "cpu"}}
    (tmp / "job.yaml").write_text(yaml.safe_dump(spec))
    ref = str(run_job(tmp / "job.yaml", catalog=local_catalog()).model_ref)

    data = rows(args.rows, 2)
    folder = tmp / "in"
    folder.mkdir()
    step = -(-args.rows // 8)
    for i in range(8):
        data.iloc[i * step:(i + 1) * step].to_parquet(folder / f"part-{i}.parquet", index=False)
    data.to_parquet(tmp / "all.parquet", index=False)

    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    def ray_data(tag: str) -> float:
        job = BatchJob(ref=ref, input=str(folder), output=str(tmp / f"out-{tag}"), job_id=tag,
                       concurrency=max(1, args.cpus // 2) if args.cpus > 2 else 1)
        started = time.perf_counter()
        result = score_on_cluster(job, on_log=lambda _: None)
        assert result.rows == args.rows
        return time.perf_counter() - started

    def single(tag: str) -> float:
        started = time.perf_counter()
        result = predict_file(ref, tmp / "all.parquet", tmp / f"single-{tag}.parquet")
        assert result.rows == args.rows
        return time.perf_counter() - started

    ray_data("warmup")  # the actors' first imports and the model download are not what is compared
    single("warmup")
    pairs = []
    for i in range(args.pairs):
        order = [("ray_data", ray_data), ("single", single)]
        if i % 2:
            order.reverse()
        seconds = {name: fn(f"p{i}") for name, fn in order}
        pair = {"first": order[0][0], "load_average": os.getloadavg()[0],
                "ray_data_rows_per_s": round(args.rows / seconds["ray_data"]),
                "single_rows_per_s": round(args.rows / seconds["single"]),
                "ratio_ray_over_single": round(seconds["single"] / seconds["ray_data"], 3)}
        print(pair, flush=True)
        pairs.append(pair)
    ray.shutdown()
    ratios = [p["ratio_ray_over_single"] for p in pairs]
    write_results(RESULTS, "ray_data_scoring", rows=args.rows, files=8, cpus=args.cpus, pairs=pairs,
                  ratio_median=float(np.median(ratios)), cpu_count=os.cpu_count(),
                  note="local one-node Ray in this process (not a site's cluster); Ray startup not timed")


if __name__ == "__main__":
    main()
