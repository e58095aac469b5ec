"""Issue 2 end to end through the CLI: train, track, register, predict; errors exit 2 with one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture()
def trained(cli, workspace):
    code, out, err = cli("train", str(EXAMPLES / "tumor.yaml"))
    assert code == 0, err
    return out


def test_tumor_reaches_95_percent_and_is_visible_to_the_plain_mlflow_client(trained: str, workspace) -> None:
    from mlflow.tracking import MlflowClient

    assert "tumor/1 registered" in trained
    client = MlflowClient(tracking_uri=f"sqlite:///{workspace.root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tumor")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test/accuracy"] >= 0.95
    for key in ("test/balanced_accuracy", "test/f1", "test/roc_auc", "test/log_loss"):
        assert key in run.data.metrics
    assert run.data.params["model.type"] == "hist_gradient_boosting"
    assert run.data.params["dataset.fingerprint"].startswith("sha256:")
    assert run.data.tags["env.scikit-learn"]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "model", "job.yaml", "environment.json", "schema.json"} <= names
    plots = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"confusion_matrix.png", "roc_curve.png", "reliability.png"}
    (version,) = client.search_model_versions("name = 'tumor'")
    assert str(version.version) == "1" and version.run_id == run.info.run_id
    assert version.tags["gravityml.data_fingerprint"] == run.data.params["dataset.fingerprint"]
    # examples/gravityml.yaml sits beside the job and says this machine is in dc-frankfurt (executor: local)
    assert version.tags["gravityml.site"] == "dc-frankfurt" and version.tags["gravityml.executor"] == "local"
    assert version.tags["gravityml.precision"] == "fp32"


def test_the_registered_model_is_an_mlflow_pyfunc_model(trained: str, workspace) -> None:
    import mlflow.pyfunc

    rows = pd.read_csv(EXAMPLES / "data" / "new_patients.csv").head(3)
    mlflow.set_registry_uri(workspace.tracking_uri)
    mlflow.set_tracking_uri(workspace.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model("models:/tumor/1")
    finally:
        mlflow.set_tracking_uri("")
        mlflow.set_registry_uri("")
    out = model.predict(rows)
    assert set(out["prediction"]) <= {"benign", "malignant"}


def test_predict_writes_prediction_and_confidence(trained: str, cli, tmp_path: Path) -> None:
    out_path = tmp_path / "scored.parquet"
    code, out, err = cli("predict", "tumor", str(EXAMPLES / "data" / "new_patients.csv"), "-o", str(out_path), "--proba")
    assert code == 0, err
    scored = pd.read_parquet(out_path)
    assert len(scored) == 114 and "scored 114 rows with tumor/1" in out
    assert {"prediction", "confidence", "proba_benign", "proba_malignant", "mean radius"} <= set(scored.columns)
    assert (scored["confidence"] == scored[["proba_benign", "proba_malignant"]].max(axis=1)).all()
    assert scored["confidence"].between(0.5, 1).all()


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        ("missing_column", "input lacks column 'mean radius'"),
        ("text_in_number", "column 'mean area', row 2: 'abc' is not a number"),
        ("empty_file", "is empty"),
        ("no_file", "does not exist"),
        ("header_only", "input has no rows"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_output(trained: str, cli, tmp_path: Path, make: str, pattern: str) -> None:
    rows = pd.read_csv(EXAMPLES / "data" / "new_patients.csv").head(4)
    path = tmp_path / f"{make}.csv"
    if make == "missing_column":
        rows.drop(columns=["mean radius"]).to_csv(path, index=False)
    elif make == "text_in_number":
        rows = rows.astype({"mean area": object})
        rows.loc[rows.index[1], "mean area"] = "abc"
        rows.to_csv(path, index=False)
    elif make == "empty_file":
        path.write_text("")
    elif make == "header_only":
        rows.iloc[:0].to_csv(path, index=False)
    out_path = tmp_path / "out.csv"
    code, out, err = cli("predict", "tumor", str(path), "-o", str(out_path))
    assert code == 2
    assert pattern in err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert not out_path.exists()
    assert not list(tmp_path.glob(".out.csv*"))


def test_debug_shows_the_traceback(trained: str, cli, tmp_path: Path) -> None:
    code, _, err = cli("--debug", "predict", "tumor", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.csv"))
    assert code == 2 and "Traceback" in err


def test_two_trainings_give_identical_metrics_and_two_versions(trained: str, cli, workspace) -> None:
    from gravityml.tracking import resolve, run_metrics

    code, _, err = cli("train", str(EXAMPLES / "tumor.yaml"))
    assert code == 0, err
    first, second = resolve(workspace, "tumor/1"), resolve(workspace, "tumor/2")
    assert resolve(workspace, "tumor").version == 2
    m1, m2 = run_metrics(workspace, first.run_id), run_metrics(workspace, second.run_id)
    # cost/metered_usd is wall-clock time at dc-frankfurt's rate (this machine's site in the example catalog)
    learned1, learned2 = ({k: v for k, v in m.items() if not k.startswith("cost/metered")} for m in (m1, m2))
    assert learned1 == learned2 and m1["test/accuracy"] >= 0.95
    assert m1["cost/metered_usd"] > 0 and m2["cost/metered_usd"] > 0


def test_models_list_show_promote_compare(trained: str, cli, workspace) -> None:
    cli("train", str(EXAMPLES / "tumor.yaml"))
    code, out, _ = cli("models", "list")
    assert code == 0 and "tumor" in out and "hist_gradient_boosting" in out
    code, out, _ = cli("models", "promote", "tumor/1", "--alias", "production")
    assert code == 0 and "tumor@production -> version 1" in out
    code, out, _ = cli("models", "show", "tumor@production")
    assert code == 0 and "tumor/1" in out and "aliases: production" in out and "data_fingerprint" in out
    code, out, _ = cli("models", "compare", "tumor/1", "tumor@production")
    assert code == 0 and "test/accuracy" in out
    code, _, err = cli("models", "show", "tumor@staging")
    assert code == 2 and "no alias 'staging'" in err
    code, _, err = cli("models", "promote", "tumor/1", "--alias", "latest")
    assert code == 2 and "not a usable alias" in err
    code, _, err = cli("models", "show", "tumour")
    assert code == 2 and "no such model" in err and "'tumor'" in err


def test_python_api(trained: str, workspace) -> None:
    import gravityml
    from gravityml.tracking import promote

    promote(workspace, "tumor/1", "production")
    model = gravityml.load("tumor@production")
    rows = pd.read_csv(EXAMPLES / "data" / "new_patients.csv").head(5)
    predicted = model.predict(rows)
    proba = model.predict_proba(rows)
    assert list(proba.columns) == ["benign", "malignant"]
    assert (predicted["confidence"].to_numpy() == proba.max(axis=1).to_numpy()).all()
    assert model.meta["ref"] == "tumor/1"


def test_a_failed_run_leaves_no_version(cli, workspace, write_spec, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    spec = write_spec(tmp_path / "bad.yaml", model={"type": "svm", "params": {"kernel": "precomputed"}})
    code, _, err = cli("train", str(spec))
    assert code == 2 and "refused to fit" in err
    client = MlflowClient(tracking_uri=workspace.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("iris").experiment_id])
    assert run.info.status == "FAILED"
    assert client.search_model_versions("name = 'iris'") == []


def test_validate_and_spec_schema(cli, write_spec, tmp_path: Path) -> None:
    code, out, _ = cli("validate", str(write_spec(tmp_path / "ok.yaml")))
    assert code == 0 and "valid" in out and "logistic_regression" in out
    code, _, err = cli("validate", str(write_spec(tmp_path / "bad.yaml", model={"type": "xgbost"})))
    assert code == 2 and "model.type: 'xgbost' is not a model type" in err
    target = tmp_path / "schema.json"
    code, _, _ = cli("spec-schema", "-o", str(target))
    assert code == 0 and '"title": "gravityml job spec"' in target.read_text()


def test_tracking_uri_override(cli, write_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workspace) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(workspace.root / "mlflow.db", shared / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{shared / 'mlflow.db'}")
    code, out, err = cli("train", str(write_spec(tmp_path / "iris.yaml")))
    assert code == 0, err
    from mlflow.tracking import MlflowClient

    assert MlflowClient(tracking_uri=f"sqlite:///{shared / 'mlflow.db'}").search_model_versions("name = 'iris'")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert MlflowClient(tracking_uri=workspace.tracking_uri).search_model_versions("name = 'iris'") == []
