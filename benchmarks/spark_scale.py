"""Spark's GBT against scikit-learn's HistGradientBoosting in one process, as the rows grow (issue 16, point 7).

For each row count, generated rows (``--features`` float32 columns and a binary label from a noisy linear
rule, seeded) are written as Parquet files of 1 million rows each; then two runs, in alternating order,
each in a process of its own:

* ``one process``: what a single-process job does with a table: read every file into memory
  (pyarrow, then numpy) and fit ``HistGradientBoostingClassifier`` on 80% of the rows, accuracy on the rest;
* ``spark``: a Spark session (``local[N]``: the driver JVM is the executor), ``spark.read.parquet``,
  ``VectorAssembler``, ``randomSplit``, ``pyspark.ml`` ``GBTClassifier``, accuracy by ``MulticlassClassificationEvaluator``.

Both use the same trees (``--iterations`` rounds of depth ``--depth``). The benchmark samples the resident
memory of each run's whole process tree (Python and the JVM) every 0.2 s: the peak is reported, and a run
whose tree passes ``--memory-gib`` is killed and counted out of memory, as a machine of that size would
(the 2-core dev container has 24 GB, far more than a site's single node may). A run past ``--timeout-s``
is counted out of time. The load average is recorded with each run. Results:
benchmarks/results/spark_scale.json.

    .venv/bin/python benchmarks/spark_scale.py [--rows 1000000 5000000 20000000] [--memory-gib 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "spark_scale.json"
CHUNK = 1_000_000

ONE_PROCESS = textwrap.dedent("""
    import json, sys, time
    import numpy as np, pyarrow.dataset as ds
    from sklearn.ensemble import HistGradientBoostingClassifier
    folder, iterations, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    start = time.perf_counter()
    table = ds.dataset(folder, format="parquet").to_table()
    y = table.column("label").to_numpy()
    X = np.column_stack([table.column(c).to_numpy() for c in table.column_names if c != "label"])
    del table
    rng = np.random.default_rng(3)
    test = rng.random(len(y)) < 0.2
    model = HistGradientBoostingClassifier(max_iter=iterations, max_depth=depth, early_stopping=False,
                                           random_state=3).fit(X[~test], y[~test])
    accuracy = float((model.predict(X[test]) == y[test]).mean())
    print(json.dumps({"accuracy": accuracy, "seconds": time.perf_counter() - start}))
""")

SPARK = textwrap.dedent("""
    import json, sys, time
    from pyspark.sql import SparkSession
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.classification import GBTClassifier
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    folder, iterations, depth, cores, heap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    start = time.perf_counter()
    spark = (SparkSession.builder.master(f"local[{cores}]").appName("spark-scale")
             .config("spark.driver.memory", heap).config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "8").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    frame = spark.read.parquet(folder)
    features = [c for c in frame.columns if c != "label"]
    rows = VectorAssembler(inputCols=features, outputCol="features").transform(frame).select("features", "label")
    train, test = rows.randomSplit([0.8, 0.2], seed=3)
    model = GBTClassifier(maxIter=iterations, maxDepth=depth, seed=3, cacheNodeIds=False).fit(train)
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(model.transform(test))
    print(json.dumps({"accuracy": float(accuracy), "seconds": time.perf_counter() - start}))
    spark.stop()
""")


def generate(folder: Path, rows: int, features: int) -> None:
    """``rows`` generated rows as Parquet files of CHUNK rows (written once, reused)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = folder / "_DONE"
    if done.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    weights = np.random.default_rng(0).normal(size=features).astype(np.float32)
    for part, first in enumerate(range(0, rows, CHUNK)):
        n = min(CHUNK, rows - first)
        rng = np.random.default_rng(1000 + part)
        x = rng.normal(size=(n, features)).astype(np.float32)
        score = x @ weights + 0.5 * np.sin(3 * x[:, 0]) * x[:, 1] + rng.normal(scale=1.0, size=n)
        columns = {f"x{i}": x[:, i] for i in range(features)}
        columns["label"] = (score > 0).astype(np.int32)
        pq.write_table(pa.table(columns), folder / f"part-{part:05d}.parquet")
    done.write_text("ok")


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def _rss_bytes(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def run(code: str, args: list[str], memory_limit: int, timeout_s: float) -> dict:
    """One run in its own process group: its outcome, wall-clock and the peak RSS of its process tree."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    peak, outcome = 0, "ok"
    while proc.poll() is None:
        peak = max(peak, _rss_bytes(_tree(proc.pid)))
        if peak > memory_limit:
            outcome = "out of memory"
        elif time.perf_counter() - start > timeout_s:
            outcome = "out of time"
        if outcome != "ok":
            os.killpg(proc.pid, 9)
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    result = {"outcome": outcome, "wall_s": round(wall, 2), "peak_rss_gib": round(peak / 2**30, 3),
              "load_avg_1m_at_start": round(load, 2), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    if outcome == "ok":
        if proc.returncode != 0:
            result["outcome"] = f"failed (exit {proc.returncode})"
            result["error"] = err.strip().splitlines()[-1][:300] if err.strip() else ""
        else:
            result.update(json.loads(out.strip().splitlines()[-1]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--spark-heap", default="2g", help="spark.driver.memory (local mode: the executor too)")
    parser.add_argument("--memory-gib", type=float, default=4.0, help="a run whose process tree passes this is OOM")
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "gravityml-spark-scale")
    parser.add_argument("--output", type=Path, default=RESULTS)
    a = parser.parse_args()
    limit = int(a.memory_gib * 2**30)
    results = []
    for i, rows in enumerate(a.rows):
        folder = a.data_dir / f"{rows}x{a.features}"
        generate(folder, rows, a.features)
        runs = {
            "one_process": (ONE_PROCESS, [str(folder), str(a.iterations), str(a.depth)]),
            "spark": (SPARK, [str(folder), str(a.iterations), str(a.depth), str(a.cores), a.spark_heap]),
        }
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        entry: dict = {"rows": rows, "order": order}
        for name in order:
            entry[name] = run(*runs[name], memory_limit=limit, timeout_s=a.timeout_s)
            print(rows, name, entry[name], flush=True)
        results.append(entry)
        write_results(a.output, "spark_scale", settings={k: str(v) for k, v in vars(a).items() if k != "output"},
                      cpu_count=os.cpu_count(), results=results)
    past = [e["rows"] for e in results if e["one_process"]["outcome"] != "ok" and e["spark"]["outcome"] == "ok"]
    print("one process fails and Spark finishes from", min(past) if past else "no row count tried", "rows")


if __name__ == "__main__":
    main()
