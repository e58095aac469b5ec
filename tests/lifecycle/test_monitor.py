"""Drift monitoring against the reference profile stored with every model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.lifecycle.conftest import loans, workspace_env

pytestmark = pytest.mark.xdist_group("lifecycle-monitor")  # its tests share one workspace, in order


def _champion(world: Path) -> tuple[Any, Any, Path]:  # (model, profile, folder)
    from gravityml.models import load_model
    from gravityml.models._profile import read_profile
    from gravityml.tracking import Workspace, download

    _, folder = download(Workspace.current(world / "ws"), "credit/1")
    return load_model(folder), read_profile(folder), folder


def test_every_trained_model_carries_a_profile(world: Path) -> None:
    with workspace_env(world / "ws"):
        _, profile, _ = _champion(world)
    assert profile is not None and profile["train_rows"] == 450 and profile["test_rows"] == 150
    income = profile["features"]["income"]
    assert income["kind"] == "numeric" and income["missing_rate"] == 0.0
    assert -0.2 < income["quantiles"]["0.5"] < 0.2 and sum(income["histogram"]["counts"]) == 450
    assert len(income["sample"]) == 450  # fewer rows than the sample cap: all of them
    region = profile["features"]["region"]
    assert region["kind"] == "categorical" and set(region["frequencies"]) == {"north", "south", "east"}
    assert sum(region["frequencies"].values()) == 450
    assert set(profile["predictions"]) == {"prediction", "confidence"}
    assert profile["predictions"]["prediction"]["kind"] == "categorical"
    assert sum(profile["predictions"]["prediction"]["frequencies"].values()) == 150
    assert profile["metrics"]["test/accuracy"] > 0.8 and not any(k.startswith("train/") for k in profile["metrics"])


def test_a_shifted_sample_is_flagged_and_unshifted_ones_are_quiet(world: Path,
                                                                record_property: pytest.RecordProperty) -> None:
    from gravityml.inference._monitor import Thresholds, compare

    with workspace_env(world / "ws"):
        model, profile, _ = _champion(world)
    unlabelled = ["income", "debt", "region"]
    shifted = compare(model, profile, loans(300, 99, shifted=True)[unlabelled])
    assert shifted.drifted
    drifted = {c.name: c for c in shifted.features if c.drifted}
    assert set(drifted) == {"income", "region"}  # debt did not move
    assert drifted["income"].test == "ks" and drifted["income"].p_value < 1e-6 and drifted["income"].psi > 1
    assert drifted["region"].test == "chi2" and "west" in drifted["region"].note
    assert any("unseen in training ['west']" in v for v in shifted.violations)

    alarms = 0
    for seed in range(100, 150):  # 50 fresh samples from the training distribution
        report = compare(model, profile, loans(300, seed)[unlabelled], Thresholds())
        alarms += report.drifted
    rate = alarms / 50
    record_property("false_alarm_rate_50_unshifted", rate)
    print(f"false-alarm rate on 50 unshifted samples of 300 rows: {rate:.2f} ({alarms}/50)")
    assert rate <= 0.1  # family-wise alpha is 0.01 per check; 0.1 leaves room for chance, not for a broken test


def test_metrics_against_training_when_labels_are_present(world: Path) -> None:
    from gravityml.inference._monitor import compare

    with workspace_env(world / "ws"):
        model, profile, _ = _champion(world)
    same = compare(model, profile, loans(400, 7))
    assert abs(same.metrics["test/accuracy"]["current"] - same.metrics["test/accuracy"]["training"]) < 0.06
    moved = compare(model, profile, loans(400, 8, shifted=True).query("region != 'west'"))
    assert moved.metrics["test/accuracy"]["current"] < moved.metrics["test/accuracy"]["training"] - 0.2
    assert any(r.startswith("test/accuracy") for r in moved.reasons)


def test_cli_exit_codes_png_json_and_the_mlflow_run(world: Path, tmp_path: Path, cli) -> None:
    from gravityml.tracking import Workspace, resolve

    loans(300, 11, shifted=True).to_csv(tmp_path / "recent.csv", index=False)
    folder = tmp_path / "clean"
    folder.mkdir()
    loans(150, 12).to_csv(folder / "a.csv", index=False)
    loans(150, 13).to_parquet(folder / "b.parquet", index=False)
    with workspace_env(world / "ws"):
        code, out, err = cli("monitor", "credit@production", "--data", str(folder))
        assert code == 0, err
        assert "300 recent rows" in out and "no drift over the thresholds" in out
        code, out, err = cli("monitor", "credit@production", "--data", str(tmp_path / "recent.csv"),
                             "--png", str(tmp_path / "drift.png"), "--json", str(tmp_path / "drift.json"))
        assert code == 1, err
        assert "DRIFT" in out and "income" in out
        report = json.loads((tmp_path / "drift.json").read_text())
        assert report["drifted"] and set(report["drifted_features"]) == {"income", "region"}
        assert (tmp_path / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        ws = Workspace.current()
        run = ws.client.get_run(report["run_id"])
        assert run.data.tags["gravityml.monitor.model"] == "credit/1"
        assert run.data.metrics["feature/income/psi"] > 1
        assert resolve(ws, "credit/1").tags["lifecycle.monitor.last_run"] == report["run_id"]
        # thresholds from flags: a PSI no column can reach passes rows that break no schema rule
        loans(300, 14, shifted=True).query("region != 'west'").drop(columns="approved").to_csv(
            tmp_path / "moved.csv", index=False)
        code, _, _ = cli("monitor", "credit/1", "--data", str(tmp_path / "moved.csv"), "--no-log")
        assert code == 1
        code, out, err = cli("monitor", "credit/1", "--data", str(tmp_path / "moved.csv"), "--no-log",
                             "--psi", "1000")
        assert code == 0 and "no drift over the thresholds" in out, out + err
        code, _, err = cli("monitor", "credit/1", "--no-log")
        assert code == 2 and "exactly one of --data or --logs" in err


def test_thresholds_come_from_the_spec_monitor_section(world: Path, tmp_path: Path, cli) -> None:
    from tests.lifecycle.conftest import spec

    loans(300, 21, shifted=True).query("region != 'west'").drop(columns="approved").to_csv(
        tmp_path / "recent.csv", index=False)
    lenient = spec(tmp_path / "lenient.yaml", world / "old.csv",
                   monitor={"max_drifted_features": 3, "prediction_drift": False})
    with workspace_env(world / "ws"):
        code, out, _ = cli("monitor", "credit/1", "--data", str(tmp_path / "recent.csv"), "--no-log")
        assert code == 1 and "income" in out
        code, out, err = cli("monitor", "credit/1", "--data", str(tmp_path / "recent.csv"), "--no-log",
                             "--spec", str(lenient))
        assert code == 0, out + err
        assert "no drift over the thresholds" in out


def test_a_folder_without_a_profile_says_what_is_missing(world: Path, tmp_path: Path, cli) -> None:
    with workspace_env(world / "ws"):
        _, _, folder = _champion(world)
        old = tmp_path / "old-model"
        shutil.copytree(folder, old)
        (old / "profile.json").unlink()
        from gravityml.inference import load

        assert len(load(old).predict(loans(5, 3))) == 5  # an old folder still serves
        loans(50, 4).to_csv(tmp_path / "recent.csv", index=False)
        code, _, err = cli("monitor", str(old), "--data", str(tmp_path / "recent.csv"))
    assert code == 2 and "has no reference profile" in err and "gravityml retrain" in err
