"""ONNX export: parity with the original, int8, the failure path, and a run without gravityml."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tests.inference.conftest import mixed_frame, onnxruntime_only, workspace_env

from gravityml.errors import ExportError


def test_export_writes_model_metadata_and_a_passing_parity_report(trained: Path, tmp_path: Path) -> None:
    from gravityml.inference import OnnxModel, export_model, load

    with workspace_env(trained):
        report = export_model("loans@production", tmp_path / "loans")
        native = load("loans/1")
    files = sorted(p.name for p in report.directory.iterdir())
    assert files == ["metadata.json", "model.onnx", "parity.json"]
    parity = json.loads((report.directory / "parity.json").read_text())
    assert parity["passed"] and parity["rows"] == 60  # the job's 25% test split of 240 rows
    assert parity["label_agreement"] >= 0.995 and parity["max_abs_diff"] < 1e-3
    assert {"batch_ms_per_row", "single_row_ms"} <= set(parity["latency"]["onnx"])
    meta = json.loads((report.directory / "metadata.json").read_text())
    assert [i["columns"] for i in meta["inputs"]] == [["size"], ["region"], ["note"]]
    assert meta["label_map"] == {"0": "approve", "1": "review"}
    steps = {p["part"]: p["steps"] for p in meta["preprocessing"]["steps"]}
    assert steps["text_note"] == ["TfidfVectorizer"] and steps["categorical"][-1] == "OneHotEncoder"
    rows = mixed_frame(50, seed=9).drop(columns="label")
    exported = OnnxModel(report.directory).predict(rows)
    assert (exported["prediction"] == native.predict(rows)["prediction"]).mean() >= 0.98
    np.testing.assert_allclose(exported["confidence"], native.predict(rows)["confidence"], atol=1e-3)


def test_int8_export_and_parity_failure_leaves_nothing(trained: Path, tmp_path: Path) -> None:
    from gravityml.inference import export_model

    with workspace_env(trained):
        report = export_model("iris", tmp_path / "iris-int8", quantize="int8")
        assert report.parity["passed"] and "size_ratio_fp32_to_int8" in report.parity
        with pytest.raises(ExportError, match="differ from the original's by up to"):
            export_model("iris", tmp_path / "strict", max_diff=0.0)  # float32 cannot match float64 exactly
    assert not (tmp_path / "strict").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris-int8"]


def test_exported_model_runs_with_plain_onnxruntime_and_no_gravityml(trained: Path, tmp_path: Path) -> None:
    """A subprocess with -I -S (no site-packages, no PYTHONPATH) that sees only numpy and onnxruntime."""

    from gravityml.inference import export_model

    with workspace_env(trained):
        report = export_model("iris", tmp_path / "iris")
    only = onnxruntime_only(tmp_path / "only-onnxruntime")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(only)!r})
        import json
        import numpy as np
        import onnxruntime as ort
        for name in ("gravityml", "sklearn", "pandas"):
            try:
                __import__(name)
            except ImportError:
                pass
            else:
                raise SystemExit(name + " is importable")
        meta = json.load(open({str(report.directory / "metadata.json")!r}))
        session = ort.InferenceSession({str(report.model_file)!r}, providers=["CPUExecutionProvider"])
        rows = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [7.7, 3.0, 6.1, 2.3]]
        feeds = {{i["name"]: np.array([[r[k]] for r in rows], dtype=np.float32) for k, i in enumerate(meta["inputs"])}}
        proba = session.run([meta["outputs"]["probabilities"]], feeds)[0]
        print(json.dumps([meta["label_map"][str(int(k))] for k in proba.argmax(axis=1)]))
    """)
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["setosa", "versicolor", "virginica"]


def test_cli_export_prints_parity_and_rejects_unknown_format(trained: Path, tmp_path: Path, cli) -> None:
    with workspace_env(trained):
        code, out, _ = cli("export", "iris/1", "--format", "onnx", "-o", str(tmp_path / "e"))
        assert code == 0 and "label agreement" in out and "1.0000" in out
        code, _, err = cli("export", "iris", "--format", "coreml", "-o", str(tmp_path / "f"))
        assert code == 2 and "unknown export format" in err
        code, _, err = cli("export", "nosuch", "-o", str(tmp_path / "g"))
        assert code == 2 and "no such model" in err
        code, _, err = cli("serve", "nosuch", "--port", "1")  # refs are resolved before binding
        assert code == 2 and "no such model" in err


@pytest.mark.slow
def test_torch_mlp_export_agrees_and_int8_is_several_times_smaller(trained: Path, tmp_path: Path) -> None:
    """The issue-3 torch flavor through the same export: its graph takes the encoded matrix."""
    from tests.inference.conftest import write_job

    import gravityml
    from gravityml.inference import export_model

    job = write_job(
        tmp_path / "mlp.yaml", name="tumor-mlp", task="supervised",
        data={"source": "sklearn:breast_cancer", "target": "target", "split": {"test": 0.2, "seed": 7}},
        model={"type": "mlp", "params": {"hidden": [256, 128]}}, train={"epochs": 3, "seed": 7},
        compute={"accelerator": "cpu", "precision": "fp32"},
    )
    with workspace_env(trained):
        gravityml.train(job)
        fp32 = export_model("tumor-mlp", tmp_path / "fp32").parity
        int8 = export_model("tumor-mlp", tmp_path / "int8", quantize="int8").parity
    assert fp32["label_agreement"] == 1.0 and fp32["max_abs_diff"] < 1e-4
    assert int8["label_agreement"] >= 0.995
    assert int8["size_ratio_fp32_to_int8"] >= 3.0
