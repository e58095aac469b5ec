"""`serve --log-predictions`: every answered row in the Parquet log, the log's counters in /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest
from tests.inference.conftest import Server
from tests.lifecycle.conftest import loans

pytestmark = pytest.mark.xdist_group("lifecycle-serve_log")  # its tests share one workspace, in order


def _body(frame: pd.DataFrame) -> dict[str, object]:
    n = len(frame)
    return {"inputs": [
        {"name": "income", "shape": [n], "datatype": "FP64", "data": frame["income"].tolist()},
        {"name": "debt", "shape": [n], "datatype": "FP64", "data": frame["debt"].tolist()},
        {"name": "region", "shape": [n], "datatype": "BYTES", "data": frame["region"].tolist()},
    ]}


def test_served_rows_are_logged_and_counted(world: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    srv = Server(world / "ws", "credit/1", "--log-predictions", str(logs))
    try:
        frame = loans(200, 41)
        answered = 0
        for start in range(0, 200, 8):
            response = httpx.post(f"{srv.url}/v2/models/credit/infer", json=_body(frame.iloc[start:start + 8]),
                                  timeout=30)
            assert response.status_code == 200, response.text
            answered += len(frame.iloc[start:start + 8])
        metrics = httpx.get(f"{srv.url}/metrics", timeout=10).text
        # Counters (summed across --workers), not gauges.
        assert "# TYPE gravityml_prediction_log_dropped_rows_total counter" in metrics
        assert "gravityml_prediction_log_dropped_rows_total 0.0" in metrics
        assert "gravityml_prediction_log_rows_total" in metrics
    finally:
        srv.stop()
    files = sorted(logs.glob("*.parquet"))
    assert files, srv.output()
    logged = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    assert len(logged) == answered == 200
    assert set(logged["_gml_model_version"]) == {"credit/1"}
    assert logged["_gml_prediction"].isin(["yes", "no"]).all() and logged["_gml_latency_ms"].gt(0).all()
    assert sorted(logged["income"].round(9)) == sorted(frame["income"].round(9))
