"""Start-up cost a user feels: each command's wall time, and ``train`` against a bare scikit-learn script.

Every command runs as its own process (``gravityml ...`` from the venv), as a user runs it, in a
workspace made for this benchmark. ``train`` of a small scikit-learn job (logistic regression on
scikit-learn's breast-cancer table, 569 rows) is paired with a bare script that does the same work a
user would write by hand: load the table, split it, fit the same pipeline (standard scaling and the
same estimator), score the test split and save the model with joblib. The pairs alternate (ours,
bare, ours, bare, ...) so a busy machine slows both alike; every pair is reported with the load
average before and after.

    .venv/bin/python benchmarks/startup.py [--repeats 5]

Results: benchmarks/results/startup.json. The first command in a new workspace also creates the
MLflow store (schema migrations); it is timed on its own as ``first_command``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "startup.json"
GRAVITYML = str(Path(sys.executable).with_name("gravityml"))

SPEC = {
    "name": "startup-tumor",
    "task": "supervised",
    "data": {"source": "sklearn:breast_cancer", "target": "target", "split": {"test": 0.2, "seed": 0}},
    "model": {"type": "logistic_regression", "params": {"max_iter": 500}},
    "train": {"seed": 7},
    "compute": {"accelerator": "cpu"},
}

BARE = """
import joblib
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=7)).fit(X_train, y_train)
print("accuracy", accuracy_score(y_test, model.predict(X_test)))
joblib.dump(model, "bare-model.joblib")
"""


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command, and (ours, bare) train pairs")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gml-startup-") as tmp:
        work = Path(tmp)
        spec = work / "tumor.yaml"
        spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
        (work / "bare.py").write_text(BARE)
        env = {**os.environ, "GRAVITYML_HOME": str(work / "ws"), "MPLBACKEND": "Agg"}
        env.pop("MLFLOW_TRACKING_URI", None)

        first = timed([GRAVITYML, "models", "list"], env, work)  # creates the store
        timed([GRAVITYML, "plan", str(spec)], env, work)  # the first plan calibrates this machine once
        commands: dict[str, list[str]] = {
            "--help": [GRAVITYML, "--help"],
            "validate": [GRAVITYML, "validate", str(spec)],
            "plan": [GRAVITYML, "plan", str(spec)],
            "models list": [GRAVITYML, "models", "list"],
            "python -c pass": [sys.executable, "-c", "pass"],
        }
        per_command: dict[str, Any] = {}
        for name, argv in commands.items():
            runs = [timed(argv, env, work) for _ in range(args.repeats)]
            per_command[name] = {"runs_s": runs, "median_s": statistics.median(runs)}
            print(f"{name:15s} median {per_command[name]['median_s']:.2f} s  runs {[round(r, 2) for r in runs]}", flush=True)

        timed([GRAVITYML, "train", str(spec)], env, work)  # warm-up: first train fills the file cache
        pairs = []
        for _ in range(args.repeats):
            ours = timed([GRAVITYML, "train", str(spec)], env, work)
            bare = timed([sys.executable, str(work / "bare.py")], env, work)
            pairs.append({"gravityml_train_s": ours, "bare_sklearn_s": bare, "extra_s": ours - bare})
            print(f"train {ours:.2f} s  bare {bare:.2f} s  extra {ours - bare:+.2f} s", flush=True)
        per_command["models list (after trains)"] = {"median_s": timed(commands["models list"], env, work)}

    extra = [p["extra_s"] for p in pairs]
    train = {
        "spec": SPEC,
        "pairs": pairs,
        "gravityml_median_s": statistics.median(p["gravityml_train_s"] for p in pairs),
        "bare_median_s": statistics.median(p["bare_sklearn_s"] for p in pairs),
        "extra_median_s": statistics.median(extra),
        "aim_extra_s": 3.0,
    }
    print(f"train vs bare scikit-learn: {train['extra_median_s']:+.2f} s median extra (aim <= 3 s)")
    write_results(
        RESULTS,
        "startup",
        cpu_count=os.cpu_count(),
        load_average_before=list(load_before),
        load_average_after=list(os.getloadavg()),
        repeats=args.repeats,
        first_command_new_workspace_s=first,
        commands=per_command,
        train_vs_bare=train,
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
