"""The application in-process with a deliberately slow model: timeouts, and a loop that stays free."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from gravityml.models import GravityModel
from gravityml.schema import Schema


class SlowModel(GravityModel):
    """Doubles ``x`` after a pause: stands in for a heavy network."""

    flavor = "test-slow"

    def __init__(self, pause: float) -> None:
        super().__init__(kind="regressor", schema=Schema.from_frame(pd.DataFrame({"x": [1.0, 2.0]})))
        self.pause = pause

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        time.sleep(self.pause if len(frame) and frame["x"].iloc[0] > 0 else 0)
        return pd.DataFrame({"prediction": frame["x"] * 2}, index=frame.index)

    def _save_payload(self, path: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _load_payload(cls, path: Path, **kwargs: Any) -> GravityModel:
        raise NotImplementedError


def body(x: float) -> dict:
    return {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [x]}]}


def test_a_request_over_the_timeout_gets_503_while_health_answers_at_once() -> None:
    from gravityml.inference import ServeConfig, create_app
    from gravityml.inference._repository import Loaded

    app = create_app([Loaded("slow", "1", "slow", SlowModel(pause=2.0), "native")],
                     config=ServeConfig(timeout_s=0.3))

    async def scenario() -> tuple[httpx.Response, float, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=10) as client:
            slow = asyncio.create_task(client.post("/v2/models/slow/infer", json=body(1.0)))
            await asyncio.sleep(0.05)
            start = time.perf_counter()
            live = await client.get("/v2/health/live")
            waited = time.perf_counter() - start
            timed_out = await slow
            await asyncio.sleep(2.0)  # the abandoned batch finishes in its thread
            fast = await client.post("/v2/models/slow/infer", json=body(0.0))
            return live, waited, timed_out, fast

    live, waited, timed_out, fast = asyncio.run(scenario())
    # A blocked loop would answer only after the 2 s model call; a free one at once.
    assert live.status_code == 200 and waited < 1.5
    assert timed_out.status_code == 503 and "did not finish within 0.3 s" in timed_out.json()["error"]
    assert fast.status_code == 200 and fast.json()["outputs"][0]["data"] == [0.0]
