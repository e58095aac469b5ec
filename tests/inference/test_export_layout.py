"""One metadata.json layout for every exportable model kind: each export validates against
docs/export-metadata.schema.json, and the onnxruntime-only function of docs/serving.md, run in a
process that can import only numpy and onnxruntime, gives what the original model gives."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.inference.conftest import onnxruntime_only

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

#: name -> (task, data, model, train): every model kind (classifier, regressor, clusterer, anomaly
#: detector, reducer) of every flavor that exports, on a tiny budget. (The other unsupervised
#: types' graphs are checked for parity in test_export_unsupervised.py.)
KINDS: dict[str, tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "sklearn-classifier": ("supervised", {"source": "sklearn:iris", "target": "target"}, {"type": "logistic_regression"}, {}),
    "sklearn-calibrated": ("supervised", {"source": "sklearn:iris", "target": "target"}, {"type": "random_forest", "params": {"n_estimators": 10}}, {"calibrate": "sigmoid"}),
    "sklearn-regressor": ("supervised", {"source": "sklearn:diabetes", "target": "target"}, {"type": "ridge"}, {}),
    "torch-mlp-classifier": ("supervised", {"source": "sklearn:iris", "target": "target"}, {"type": "mlp", "params": {"hidden": [8]}}, {"epochs": 2}),
    "torch-mlp-regressor": ("supervised", {"source": "sklearn:diabetes", "target": "target"}, {"type": "mlp", "params": {"hidden": [8]}}, {"epochs": 2}),
    "torch-text": ("supervised", {"source": str(ROOT / "examples/data/spam.csv"), "target": "label", "text": "text"}, {"type": "text", "params": {"dim": 8, "hidden": 8}}, {"epochs": 1}),
    "kmeans": ("unsupervised", {"source": "sklearn:iris"}, {"type": "kmeans", "params": {"n_clusters": 3}}, {}),
    "isolation_forest": ("unsupervised", {"source": "sklearn:iris"}, {"type": "isolation_forest", "params": {"n_estimators": 20}}, {}),
    "autoencoder": ("unsupervised", {"source": "sklearn:iris"}, {"type": "autoencoder"}, {"epochs": 2}),
    "pca": ("unsupervised", {"source": "sklearn:iris"}, {"type": "pca"}, {}),
}


def _docs_function() -> str:
    """The onnxruntime-only function from docs/serving.md, exactly as a reader copies it."""
    text = (DOCS / "serving.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(import json, numpy as np, onnxruntime as ort\n\ndef predict_with_onnxruntime.*?)```", text, re.S)
    assert block, "docs/serving.md lost its onnxruntime-only snippet"
    return block.group(1).split("\nout, meta = ")[0]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any, pd.DataFrame]]:
    import warnings

    from gravityml.data import load_dataset
    from gravityml.inference import export_model
    from gravityml.paradigms import TrainContext, train
    from gravityml.spec import load_spec

    root = tmp_path_factory.mktemp("layout")
    out = {}
    for name, (task, data, model, train_settings) in KINDS.items():
        spec = load_spec({"name": name, "task": task, "data": data, "model": model, "train": {"seed": 3, **train_settings},
                          "compute": {"accelerator": "cpu", "threads": 1}})
        dataset = load_dataset(spec)
        workdir = root / name
        workdir.mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tiny budgets: chance-level warnings are expected
            result = train(TrainContext(spec=spec, workdir=workdir, dataset=dataset))
        folder = result.model.save(workdir / "model")
        rows = dataset.X.head(12)
        rows.to_csv(workdir / "rows.csv", index=False)
        report = export_model(str(folder), root / f"{name}-onnx", data=workdir / "rows.csv", latency=False)
        out[name] = (report.directory, result.model, rows)
    return out


def test_every_export_has_the_one_documented_layout(exports) -> None:
    import jsonschema

    schema = json.loads((DOCS / "export-metadata.schema.json").read_text(encoding="utf-8"))
    keys = set()
    for name, (directory, model, _) in exports.items():
        meta = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
        jsonschema.validate(meta, schema)
        assert meta["model"]["kind"] == model.kind, name
        keys.add(tuple(sorted(meta)))
        for spec in meta["inputs"]:
            assert spec["columns"] is None or spec["shape"][1] == len(spec["columns"]), name
    assert len(keys) == 1  # the same top-level keys for every kind


def test_the_docs_onnxruntime_only_function_runs_every_export(exports, tmp_path: Path) -> None:
    """One process that cannot import gravityml, pandas or scikit-learn runs the docs' function."""
    only = onnxruntime_only(tmp_path / "only-onnxruntime")
    jobs = {}
    for name, (directory, _, rows) in exports.items():
        records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows.to_dict("records")]
        jobs[name] = {"folder": str(directory), "rows": records}
    (tmp_path / "jobs.json").write_text(json.dumps(jobs, default=float))
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(only)!r})
        for blocked in ("gravityml", "sklearn", "pandas"):
            try:
                __import__(blocked)
            except ImportError:
                pass
            else:
                raise SystemExit(blocked + " is importable")
    """) + _docs_function() + textwrap.dedent(f"""
        results = {{}}
        for name, job in json.load(open({str(tmp_path / "jobs.json")!r})).items():
            try:
                out, _ = predict_with_onnxruntime(job["folder"], job["rows"])
            except ValueError as exc:
                results[name] = {{"refused": str(exc)}}
            else:
                results[name] = {{role: np.asarray(v).tolist() for role, v in out.items()}}
        print(json.dumps(results))
    """)
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    for name, (_, model, rows) in exports.items():
        got = results[name]
        if name == "torch-text":  # token ids are made outside the graph, and the function says so
            assert "takes encoded rows" in got["refused"] and "token_ids" in got["refused"]
            continue
        native = model.predict(rows)
        assert set(got) == set(json.loads((exports[name][0] / "metadata.json").read_text())["outputs"]), (name, got)
        if "probabilities" in got and model.kind == "classifier":
            np.testing.assert_allclose(got["probabilities"], model.predict_proba(rows).to_numpy(), atol=1e-4, err_msg=name)
        elif model.kind == "regressor":
            np.testing.assert_allclose(np.ravel(got["prediction"]), native["prediction"], rtol=1e-3, atol=1e-3, err_msg=name)
        elif model.kind == "anomaly_detector":
            np.testing.assert_allclose(np.ravel(got["score"]), native["score"], rtol=1e-3, atol=1e-3, err_msg=name)
            assert (np.ravel(got["is_anomaly"]).astype(bool) == native["is_anomaly"].to_numpy()).all(), name
        elif model.kind == "clusterer":
            best = np.argmax(np.asarray(got["probabilities"]), axis=1)
            assert (best == native["prediction"].astype(int).to_numpy()).all(), name
        else:
            np.testing.assert_allclose(np.asarray(got["components"])[:, 0], native["component_1"], rtol=1e-3, atol=1e-3, err_msg=name)
