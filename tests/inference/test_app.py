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


class OverflowModel(SlowModel):
    """Computes in float32 the way a graph does: large inputs become infinity, the probability NaN."""

    flavor = "test-fp32"

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        import numpy as np

        with np.errstate(over="ignore", invalid="ignore"):
            x = frame["x"].to_numpy(dtype=np.float32)
            z = x * np.float32(1e10)
            confidence = np.exp(z) / np.exp(z).sum() if len(z) else z
        return pd.DataFrame({"prediction": x * 2, "confidence": confidence.astype(np.float64)}, index=frame.index)


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=10)


def _app(model: GravityModel, **config: Any) -> Any:
    from gravityml.inference import ServeConfig, create_app
    from gravityml.inference._repository import Loaded

    return create_app([Loaded("m", "1", "m", model, "native")], config=ServeConfig(**config))


def strict_json(text: str) -> Any:
    """JSON as the standard has it: NaN and Infinity are not JSON."""
    import json

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in a response body")

    return json.loads(text, parse_constant=refuse)


def test_a_model_output_that_is_not_finite_is_a_400_naming_output_and_row() -> None:
    app = _app(OverflowModel(0))

    async def scenario() -> list[httpx.Response]:
        async with _client(app) as client:
            ok = await client.post("/v2/models/m/infer", json={"inputs": [
                {"name": "x", "shape": [1], "datatype": "FP64", "data": [0.0]}]})
            bad = await client.post("/v2/models/m/infer", json={"inputs": [
                {"name": "x", "shape": [2], "datatype": "FP64", "data": [0.0, 1e30]}]})
            return [ok, bad]

    ok, bad = asyncio.run(scenario())
    assert ok.status_code == 200 and strict_json(ok.text)["outputs"][1]["data"] == [1.0]
    assert bad.status_code == 400
    assert "no finite 'confidence' for row 2" in strict_json(bad.text)["error"]


def test_starlette_errors_are_json_and_the_gate_checks_origin_type_and_admin_token() -> None:
    app = _app(SlowModel(0), cors_origins=("http://app.example",))
    infer = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}

    async def scenario() -> dict[str, httpx.Response]:
        async with _client(app) as client:
            return {
                "404": await client.get("/v2/nowhere"),
                "405": await client.get("/v2/models/m/infer"),
                "same-origin": await client.post("/v2/models/m/infer", json=infer, headers={"Origin": "http://test"}),
                "foreign": await client.post("/v2/models/m/infer", json=infer, headers={"Origin": "http://evil.example"}),
                "form": await client.post("/v2/models/m/infer", content=b"a=1",
                                          headers={"Content-Type": "application/x-www-form-urlencoded"}),
                "no-type-browser": await client.post("/v2/models/m/infer", content=b"{}",
                                                     headers={"Sec-Fetch-Site": "same-origin"}),
                "no-type-program": await client.post("/v2/models/m/infer", content=b'{"inputs": []}'),
                "allowed": await client.post("/v2/models/m/infer", json=infer, headers={"Origin": "http://app.example"}),
                "preflight": await client.options("/v2/models/m/infer", headers={
                    "Origin": "http://app.example", "Access-Control-Request-Method": "POST"}),
                "load-off": await client.post("/v2/repository/models/m/load", json={}),
            }

    r = asyncio.run(scenario())
    for key, response in r.items():
        if response.status_code >= 400:
            assert set(strict_json(response.text)) == {"error"}, key
    assert r["404"].status_code == 404 and r["405"].status_code == 405 and r["405"].headers["allow"] == "POST"
    assert r["same-origin"].status_code == 200
    assert r["foreign"].status_code == 403 and "--cors-origin http://evil.example" in r["foreign"].json()["error"]
    assert r["form"].status_code == 415 and r["no-type-browser"].status_code == 415
    assert r["no-type-program"].status_code == 400  # tritonclient sends no Content-Type: it gets in
    assert r["allowed"].status_code == 200 and r["allowed"].headers["access-control-allow-origin"] == "http://app.example"
    assert r["preflight"].status_code == 204
    assert "authorization" in r["preflight"].headers["access-control-allow-headers"]
    assert r["load-off"].status_code == 403 and "--admin-token" in r["load-off"].json()["error"]


def test_load_takes_only_registry_refs_or_the_refs_named_at_start(tmp_path: Path) -> None:
    from gravityml.inference import ServeConfig, create_app
    from gravityml.inference._repository import Loaded

    asked: list[str] = []

    def loader(ref: str) -> Loaded:
        asked.append(ref)
        return Loaded("m", "2", ref, SlowModel(0), "native")

    app = create_app([Loaded("m", "1", str(tmp_path), SlowModel(0), "native")], loader=loader,
                     config=ServeConfig(admin_token="adm", token="tok"))
    admin = {"Authorization": "Bearer adm"}

    async def scenario() -> list[httpx.Response]:
        async with _client(app) as client:
            return [
                await client.post("/v2/repository/models/m/load", json={"parameters": {"ref": "/etc"}}, headers=admin),
                await client.post("/v2/repository/models/m/load", json={"parameters": {"ref": "../m"}}, headers=admin),
                await client.post("/v2/repository/models/m/load", json={"parameters": {"ref": "m" * 3000}}, headers=admin),
                await client.post("/v2/repository/models/m/load", json={}, headers={"Authorization": "Bearer tok"}),
                await client.post("/v2/repository/models/m/load", json={}),
                await client.post("/v2/repository/models/m/load", json={}, headers=admin),
                await client.post("/v2/repository/index", headers={"Authorization": "Bearer tok"}),
            ]

    path, parent, long_ref, user_token, no_token, reload, index = asyncio.run(scenario())
    for response in (path, parent, long_ref):
        assert response.status_code == 400 and "neither a registry reference" in response.json()["error"]
    assert len(long_ref.json()["error"]) < 1000
    assert user_token.status_code == 401 and no_token.status_code == 401
    assert reload.status_code == 200 and reload.json()["version"] == "2"
    assert asked == [str(tmp_path)]  # the refused refs never reached the loader; the startup folder did
    assert index.status_code == 200


def test_version_policy_config_stats_and_unload() -> None:
    from gravityml.inference import ServeConfig, create_app
    from gravityml.inference._repository import Loaded

    # Named first: version 3 (an alias, say), then 7: unversioned requests go to 3, not the highest.
    app = create_app([Loaded("m", "3", "m@production", SlowModel(0), "native"), Loaded("m", "7", "m/7", SlowModel(0), "native")],
                     config=ServeConfig(admin_token="adm", max_delay_ms=2))
    admin = {"Authorization": "Bearer adm"}

    async def scenario() -> dict[str, Any]:
        async with _client(app) as client:
            out: dict[str, Any] = {}
            out["default"] = (await client.post("/v2/models/m/infer", json=body(0.0))).json()["model_version"]
            out["pinned"] = (await client.post("/v2/models/m/versions/7/infer", json=body(0.0))).json()["model_version"]
            await client.post("/v2/models/m/infer", json={"inputs": []})  # a failure
            out["config"] = (await client.get("/v2/models/m/config")).json()
            out["stats"] = (await client.get("/v2/models/m/stats")).json()
            out["all"] = (await client.get("/v2/models/stats")).json()
            out["v7"] = (await client.get("/v2/models/m/versions/7/stats")).json()
            out["unload3"] = await client.post("/v2/repository/models/m/unload", json={"parameters": {"version": "3"}},
                                               headers=admin)
            out["after"] = (await client.post("/v2/models/m/infer", json=body(0.0))).json()["model_version"]
            out["unload_user"] = await client.post("/v2/repository/models/m/unload", json={})
            out["unload"] = await client.post("/v2/repository/models/m/unload", json={}, headers=admin)
            out["gone"] = await client.post("/v2/models/m/infer", json=body(0.0))
            out["index"] = (await client.post("/v2/repository/index", json={})).json()
            return out

    r = asyncio.run(scenario())
    assert r["default"] == "3" and r["pinned"] == "7"
    config = r["config"]
    assert config["name"] == "m" and config["max_batch_size"] == 64
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP64", "dims": [1]}]
    assert config["dynamic_batching"] == {"max_queue_delay_microseconds": 2000}
    stats = {s["version"]: s for s in r["stats"]["model_stats"]}
    assert set(stats) == {"3", "7"} and r["all"]["model_stats"] == r["stats"]["model_stats"]
    three = stats["3"]["inference_stats"]
    assert three["success"]["count"] == 1 and three["fail"]["count"] == 1 and three["success"]["ns"] > 0
    assert three["queue"]["count"] == 1 and three["compute_infer"]["count"] == 1 and three["compute_infer"]["ns"] > 0
    assert stats["3"]["execution_count"] == 1 and stats["3"]["batch_stats"][0]["batch_size"] == 1
    assert r["v7"]["model_stats"][0]["inference_count"] == 1
    assert r["unload3"].status_code == 200 and r["unload3"].json()["versions"] == ["3"]
    assert r["after"] == "7"  # the remaining version answers unversioned requests now
    assert r["unload_user"].status_code == 401
    assert r["unload"].status_code == 200 and r["gone"].status_code == 404 and r["index"] == []


class HalfNaNModel(SlowModel):
    """Answers NaN confidence for rows with x > 100 and records each call's row count (after a pause,
    so that requests queue into one batch)."""

    flavor = "test-nan"

    def __init__(self) -> None:
        super().__init__(pause=0.2)
        self.calls: list[int] = []

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        import numpy as np

        self.calls.append(len(frame))
        time.sleep(self.pause)
        x = frame["x"].to_numpy(dtype=np.float64)
        return pd.DataFrame({"prediction": x * 2, "confidence": np.where(x > 100, np.nan, 0.5)}, index=frame.index)


def test_in_a_batch_only_the_request_with_a_non_finite_answer_fails() -> None:
    model = HalfNaNModel()
    app = _app(model, max_delay_ms=50)

    async def scenario() -> list[httpx.Response]:
        async with _client(app) as client:
            first = asyncio.create_task(client.post("/v2/models/m/infer", json=body(1.0)))
            await asyncio.sleep(0.05)  # the first batch runs; the next five queue behind it
            rest = [client.post("/v2/models/m/infer", json=body(x)) for x in (2.0, 3.0, 500.0, 4.0, 5.0)]
            return [await first, *await asyncio.gather(*rest)]

    answers = asyncio.run(scenario())
    assert max(model.calls) > 1  # the five were predicted together
    codes = [r.status_code for r in answers]
    assert codes == [200, 200, 200, 400, 200, 200], [r.text for r in answers]
    assert "no finite 'confidence' for row 1" in strict_json(answers[3].text)["error"]
    assert [strict_json(r.text)["outputs"][0]["data"] for r in answers if r.status_code == 200] == [
        [2.0], [4.0], [6.0], [8.0], [10.0]]


def test_rows_the_prediction_log_drops_are_a_counter_in_metrics(tmp_path: Path) -> None:
    from gravityml.inference._predlog import LogConfig, PredictionLogger

    plog = PredictionLogger(LogConfig(str(tmp_path / "logs"), max_queue=1, drain_seconds=5.0))
    try:
        app = _app(SlowModel(0), prediction_log=plog)
        for _ in range(50):  # a queue of one: all but the few the writer takes meanwhile are dropped
            plog.log({"x": [1.0, 2.0]}, pd.DataFrame({"prediction": [2.0, 4.0]}), model_version="m/1", latency_ms=1.0)

        async def scrape() -> str:
            async with _client(app) as client:
                return (await client.get("/metrics")).text

        metrics = asyncio.run(scrape())
        assert "# TYPE gravityml_prediction_log_dropped_rows_total counter" in metrics
        assert f"gravityml_prediction_log_dropped_rows_total {float(plog.dropped_rows)}" in metrics
        assert plog.dropped_rows >= 2
    finally:
        plog.close()
