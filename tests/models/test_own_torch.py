"""Your own torch module from your own package: trains in the platform's loop, resumes, exports,
and loads in a fresh process that has neither the package nor the source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from gravityml.data import load_dataset
from gravityml.errors import SpecError, TrainingError
from gravityml.inference import export_model
from gravityml.paradigms import TrainContext, train
from gravityml.spec import load_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_torch_module"


@pytest.fixture()
def project(tmp_path: Path) -> Iterator[Path]:
    """A copy of the example: the user's package my_nets/ beside the job, outside the project."""
    target = tmp_path / "project"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    _forget_my_nets()
    yield target
    _forget_my_nets()
    if str(target) in sys.path:
        sys.path.remove(str(target))


def _forget_my_nets() -> None:
    """Each test imports its own copy of the user's package (a user trains in one process)."""
    for name in [m for m in sys.modules if m == "my_nets" or m.startswith("my_nets.")]:
        del sys.modules[name]


def job(project: Path, **over: object) -> Path:
    doc = yaml.safe_load((project / "job.yaml").read_text())
    doc["train"].update({"epochs": 3, "patience": None})
    for key, value in over.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    path = project / "job.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def fit(path: Path, workdir: Path, **ctx: object):  # type: ignore[no-untyped-def]
    spec = load_spec(path)
    dataset = load_dataset(spec)
    workdir.mkdir(parents=True, exist_ok=True)
    return spec, dataset, train(TrainContext(spec=spec, workdir=workdir, dataset=dataset, **ctx))  # type: ignore[arg-type]


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_own_module_trains_exports_and_loads_without_its_source_tree(project: Path, tmp_path: Path) -> None:
    spec, dataset, result = fit(job(project), tmp_path)
    assert result.metrics["test/accuracy"] > 0.85
    assert result.model.meta["model_type"] == "torch"
    assert result.model.meta["network"]["inputs"] == {"kind": "table", "n_features": 30, "shape": None, "vocab_size": None, "max_tokens": None}
    folder = result.model.save(tmp_path / "model")
    assert (folder / "code" / "my_nets" / "residual.py").exists()
    rows = dataset.X.head(25)
    expected = result.model.predict_proba(rows)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-6)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    report = export_model(folder, tmp_path / "onnx", data=tmp_path / "rows.csv")
    assert report.parity["passed"] and report.parity["max_abs_diff"] < 1e-4

    # A fresh process, another folder, and the user's package gone: the model brings its code.
    shutil.rmtree(project / "my_nets")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _run(
        f"""
        import sys, pandas as pd
        from gravityml.models import load_model
        model = load_model({str(folder)!r})
        print(model.predict_proba(pd.read_csv({str(tmp_path / 'rows.csv')!r})).to_json(orient="values"))
        print(sys.modules["my_nets"].__file__)
        """,
        elsewhere,
    )
    assert done.returncode == 0, done.stderr
    values, module_file = done.stdout.strip().splitlines()
    np.testing.assert_allclose(np.array(json.loads(values)), expected.to_numpy(), atol=1e-6)
    assert module_file.startswith(str(folder / "code"))

    # Without the stored code, loading says which module is missing.
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    shutil.rmtree(broken / "code")
    done = _run(f"from gravityml.models import load_model; load_model({str(broken)!r})", elsewhere)
    assert done.returncode != 0
    assert "module 'my_nets' is missing (entry point 'my_nets.residual:build')" in done.stderr


def test_own_module_resumes_from_its_checkpoint(project: Path, tmp_path: Path) -> None:
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    fit(job(project, train={"epochs": 2}), tmp_path / "a", checkpoint_dir=checkpoints)
    _, _, resumed = fit(job(project, train={"epochs": 4}), tmp_path / "b", checkpoint_dir=checkpoints, resume=True)
    assert resumed.tags["resumed_from_epoch"] == "2" and resumed.tags["epochs_run"] == "4"


def test_own_module_on_images_with_a_named_loss_and_optimizer(project: Path, tmp_path: Path) -> None:
    path = job(project, data={"source": "sklearn:digits", "target": "target"}, model={"optimizer": "sgd", "loss": "cross_entropy"})
    _, _, result = fit(path, tmp_path)
    assert result.model.meta["network"]["inputs"]["shape"] == [1, 8, 8]
    assert result.metrics["test/accuracy"] > 0.5
    path = job(project, data={"source": "sklearn:diabetes", "target": "target"}, model={"loss": "cross_entropy", "optimizer": "adam"})
    with pytest.raises(TrainingError, match=r"model.loss: cross_entropy is a classification loss and this job is regression.*'huber'"):
        fit(path, tmp_path)


def test_a_factory_is_checked_when_the_spec_loads(project: Path) -> None:
    with pytest.raises(SpecError, match=r"^model.params.widht: 'widht' is not a parameter of build \(did you mean 'width'\?\)"):
        load_spec(job(project, model={"params": {"widht": 8}}))
    with pytest.raises(SpecError, match=r"^model.entry_point: 'my_nets.residual' has no 'buld' \(did you mean 'build'\?\)"):
        load_spec(job(project, model={"entry_point": "my_nets.residual:buld", "params": {}}))
    with pytest.raises(SpecError, match=r"^model.loss: 'hubber' is not a loss \(did you mean 'huber'\?\)"):
        load_spec(job(project, model={"entry_point": "my_nets.residual:build", "loss": "hubber"}))


def test_registered_own_module_loads_through_gravityml_and_mlflow_without_its_package(project: Path, workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import gravityml

    gravityml.train(job(project, train={"epochs": 2}))
    spec = load_spec(project / "job.yaml")
    rows = load_dataset(spec).X.head(5)
    expected = gravityml.load("tumor-resnet/1").predict_proba(rows).to_numpy()
    shutil.rmtree(project / "my_nets")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rows.to_csv(elsewhere / "rows.csv", index=False)
    done = _run(
        f"""
        import os, json, mlflow, pandas as pd, gravityml
        os.environ["GRAVITYML_HOME"] = {str(workspace.root)!r}
        rows = pd.read_csv("rows.csv")
        a = gravityml.load("tumor-resnet/1").predict_proba(rows).to_numpy().tolist()
        mlflow.set_tracking_uri({workspace.tracking_uri!r})
        mlflow.set_registry_uri({workspace.tracking_uri!r})
        b = mlflow.pyfunc.load_model("models:/tumor-resnet/1").predict(rows)["confidence"].tolist()
        print(json.dumps([a, b]))
        """,
        elsewhere,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(a), expected, atol=1e-6)
    np.testing.assert_allclose(np.array(b), expected.max(axis=1), atol=1e-6)



def test_own_module_trains_data_parallel_on_two_cpu_processes(project: Path, tmp_path: Path) -> None:
    """The spawned workers unpickle the user's module by name: its folder must reach them."""
    _, _, result = fit(job(project, train={"epochs": 2}, compute={"accelerator": "cpu", "devices": 2}), tmp_path)
    assert result.tags["devices"] == "2" and "DistributedDataParallel over 2 processes" in result.tags["distributed"]
    assert result.metrics["test/accuracy"] > 0.8
