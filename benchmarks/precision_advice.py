"""How long the precision advice takes against one fp32 training of the same job (aim: at most 2x).

Both run as fresh processes on examples/digits_cnn.yaml (``compute.threads`` set by ``--threads``
for both), alternating (advice, fp32 training) pairs so that a busy machine slows both alike:

* advice: ``gravityml precision JOB`` (probes, then the trainings it chooses, evaluation, chart);
* one fp32 training: the same data preparation and one full ``fit_torch`` at fp32, evaluated on test.

    .venv/bin/python benchmarks/precision_advice.py [--pairs 2] [--threads 1]

Results: benchmarks/results/precision_advice.json (every pair, the advice's own report, load average).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "precision_advice.json"
GRAVITYML = str(Path(sys.executable).with_name("gravityml"))

FP32 = """
import sys, tempfile
from pathlib import Path
from gravityml.data import load_dataset
from gravityml.paradigms import TrainContext
from gravityml.paradigms.deep._train import evaluate, fit_prepared, prepare, to_model
from gravityml.spec import load_spec

spec = load_spec(sys.argv[1])
dataset = load_dataset(spec)
with tempfile.TemporaryDirectory() as tmp:
    ctx = TrainContext(spec=spec, workdir=Path(tmp), dataset=dataset)
    prep = prepare(spec, dataset)
    model = to_model(ctx, prep, fit_prepared(ctx, prep, "fp32", checkpoint=False))
    print("accuracy", evaluate(model, prep, "test")[0]["test/accuracy"])
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gml-advice-") as tmp:
        doc = yaml.safe_load((ROOT / "examples" / "digits_cnn.yaml").read_text())
        doc["compute"]["threads"] = args.threads
        doc["data"]["source"] = "sklearn:digits"
        job = Path(tmp) / "digits.yaml"
        job.write_text(yaml.safe_dump(doc))
        env = {**os.environ, "GRAVITYML_HOME": str(Path(tmp) / "ws"), "MPLBACKEND": "Agg"}
        chart = Path(tmp) / "advice.png"
        pairs = []
        for _ in range(args.pairs):
            advice = timed([GRAVITYML, "precision", str(job), "-o", str(chart)], env)
            fp32 = timed([sys.executable, "-c", FP32, str(job)], env)
            pairs.append({"advice_s": advice, "fp32_training_s": fp32, "ratio": advice / fp32})
            print(f"advice {advice:.1f} s  one fp32 training {fp32:.1f} s  ratio {advice / fp32:.2f}", flush=True)
        report = json.loads(chart.with_suffix(".json").read_text())
    write_results(
        RESULTS,
        "precision_advice",
        job="examples/digits_cnn.yaml",
        threads=args.threads,
        load_average_before=list(load_before),
        load_average_after=list(os.getloadavg()),
        pairs=pairs,
        ratio_median=statistics.median(p["ratio"] for p in pairs),
        aim_ratio=2.0,
        last_report=report,
    )
    print(f"median ratio {statistics.median(p['ratio'] for p in pairs):.2f} (aim <= 2); wrote {RESULTS}")


if __name__ == "__main__":
    main()
