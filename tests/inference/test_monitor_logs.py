"""`gravityml monitor --logs` compares only the monitored version's rows: a shadow's (or a canary's)
answers in the same log are another model's and never mix into its drift or metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest
from tests.inference.conftest import Server, workspace_env
from tests.lifecycle.conftest import loans, spec, world  # noqa: F401 - world: credit/1 (@production) on old.csv

pytestmark = pytest.mark.xdist_group("inference-monitor-logs")  # its tests share one workspace, in order


def _monitor(cli, logs: Path, *flags: str) -> tuple[int, str]:  # noqa: ANN001
    code, out, err = cli("monitor", "credit@production", "--logs", str(logs), "--no-log", "--metric-drop", "0.15",
                         *flags)
    return code, out + err


def test_shadow_rows_are_left_out_unless_asked_for(world: Path, tmp_path: Path, cli) -> None:  # noqa: ANN001, F811
    import gravityml
    from gravityml.inference._predlog import LogConfig, PredictionLogger

    logs = tmp_path / "logs"
    with workspace_env(world / "ws"):
        model = gravityml.load("credit/1")
        logger = PredictionLogger(LogConfig(target=str(logs)))
        served, mirrored = loans(300, 51), loans(300, 52, shifted=True)
        mirrored["region"] = mirrored["region"].replace("west", "east")  # incomes moved, regions known
        logger.log(served, model.predict(served.drop(columns=["approved"])), model_version="credit/1",
                   latency_ms=1.0)
        # what a --shadow credit/2 logs: other rows (here shifted), another version, role shadow
        logger.log(mirrored, model.predict(mirrored.drop(columns=["approved"])), model_version="credit/2",
                   latency_ms=1.0, role="shadow")
        logger.close()
        assert logger.logged_rows == 600

        code, out = _monitor(cli, logs)
        assert code == 0, out
        assert "300 recent rows" in out and "compared  300 of 600 logged rows (version credit/1)" in out
        assert "no drift over the thresholds" in out

        code, out = _monitor(cli, logs, "--version", "all")  # both together: the shifted rows show
        assert code == 1 and "600 recent rows" in out and "DRIFT" in out, out

        code, out = _monitor(cli, logs, "--role", "shadow")
        assert code == 1 and "compared  300 of 600 logged rows (role shadow)" in out, out

        code, out = _monitor(cli, logs, "--version", "7")
        assert code == 2 and "no logged rows of credit/7" in out and "credit/1" in out, out
        code, out = _monitor(cli, logs, "--role", "canary")
        assert code == 2 and "unknown role 'canary'" in out, out


def test_a_served_shadow_is_logged_beside_the_champion_and_monitored_apart(
    world: Path, tmp_path: Path, cli  # noqa: ANN001, F811
) -> None:
    import gravityml

    with workspace_env(world / "ws"):
        gravityml.train(spec(tmp_path / "credit2.yaml", world / "new.csv"))  # credit/2, not promoted
    logs = tmp_path / "served-logs"
    srv = Server(world / "ws", "credit@production", "--shadow", "credit/2", "--log-predictions", str(logs))
    try:
        frame = loans(160, 61).drop(columns=["approved"])
        for start in range(0, len(frame), 8):
            part = frame.iloc[start:start + 8]
            body = {"inputs": [
                {"name": "income", "shape": [len(part)], "datatype": "FP64", "data": part["income"].tolist()},
                {"name": "debt", "shape": [len(part)], "datatype": "FP64", "data": part["debt"].tolist()},
                {"name": "region", "shape": [len(part)], "datatype": "BYTES", "data": part["region"].tolist()},
            ]}
            response = httpx.post(f"{srv.url}/v2/models/credit/infer", json=body, timeout=30)
            assert response.status_code == 200 and response.json()["model_version"] == "1", response.text
    finally:
        srv.stop()  # waits for the shadow copies, closes the log's open file
    logged = pd.concat([pd.read_parquet(f) for f in sorted(logs.glob("*.parquet"))], ignore_index=True)
    assert logged["_gml_model_version"].value_counts().to_dict() == {"credit/1": 160, "credit/2": 160}, srv.output()
    roles = logged.groupby("_gml_model_version")["_gml_role"].unique().to_dict()
    assert {k: list(v) for k, v in roles.items()} == {"credit/1": ["served"], "credit/2": ["shadow"]}

    with workspace_env(world / "ws"):
        code, out = _monitor(cli, logs)
        assert code == 0, out
        assert "160 recent rows" in out and "compared  160 of 320 logged rows (version credit/1)" in out
        code, out = _monitor(cli, logs, "--version", "2")
        assert "160 recent rows" in out and "(version credit/2)" in out, out
