"""A lone request runs at once (never held for the batch delay), and tensor requests are checked
against the schema on their numpy arrays (the pandas check is skipped), answering as before."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from gravityml.inference._batcher import Batcher
from gravityml.inference._prepared import prepared_frame
from gravityml.inference._tensors import decode_request
from gravityml.models import GravityModel
from gravityml.schema import Schema

TRAINING = pd.DataFrame({
    "size": [1.0, np.nan, 3.0, 4.0],
    "count": [1.0, 2.0, 3.0, 4.0],  # never missing in training: not nullable
    "member": [True, False, True, False],
    "region": ["north", "south", None, "east"],
    "plan": ["basic", "pro", "basic", "pro"],  # never missing: not nullable
    "note": ["late", None, "early", "on time"],
})


class Recorder(GravityModel):
    """Doubles ``count``; its schema check is the base one (``Schema.validate``)."""

    flavor = "test-recorder"

    def __init__(self) -> None:
        super().__init__(kind="regressor", schema=Schema.from_frame(TRAINING, text_columns=["note"]))

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"prediction": frame["count"] * 2}, index=frame.index)

    def _save_payload(self, path: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _load_payload(cls, path: Path, **kwargs: Any) -> GravityModel:
        raise NotImplementedError



def tensors(size: list, count: list, member: list, region: list, plan: list, note: list) -> dict[str, Any]:
    n = len(count)
    return {"inputs": [
        {"name": "size", "shape": [n], "datatype": "FP64", "data": size},
        {"name": "count", "shape": [n], "datatype": "FP64", "data": count},
        {"name": "member", "shape": [n], "datatype": "BOOL", "data": member},
        {"name": "region", "shape": [n], "datatype": "BYTES", "data": region},
        {"name": "plan", "shape": [n], "datatype": "BYTES", "data": plan},
        {"name": "note", "shape": [n], "datatype": "BYTES", "data": note},
    ]}


GOOD = tensors([1.5, None], [2.0, 7.0], [True, False], ["south", None], ["pro", "basic"], ["paid", None])


def test_the_numpy_check_returns_what_the_schema_check_returns() -> None:
    model = Recorder()
    assert model.schema.features[1].nullable is False and model.schema.features[4].nullable is False
    decoded = decode_request(GOOD, model.schema)
    fast = prepared_frame(decoded, model)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, model.schema.validate(decoded.frame()))


@pytest.mark.parametrize("bad", [
    tensors([1.0], [1.0], [True], ["west"], ["pro"], ["x"]),  # a category unseen in training
    tensors([1.0], [1.0], [True], ["north"], [" "], ["x"]),  # blank where training had none
    tensors([1.0], [1.0], [True], ["north"], [""], ["x"]),  # empty where training had none
])
def test_what_the_schema_check_refuses_is_left_to_it(bad: dict[str, Any]) -> None:
    model = Recorder()
    assert prepared_frame(decode_request(bad, model.schema), model) is None


def test_a_model_with_its_own_check_keeps_it() -> None:
    class Own(Recorder):
        def prepare(self, X: Any) -> pd.DataFrame:
            return super().prepare(X)

    model = Own()
    assert prepared_frame(decode_request(GOOD, model.schema), model) is None


def test_the_server_skips_the_pandas_check_for_tensors_and_still_names_bad_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gravityml.inference import ServeConfig, create_app
    from gravityml.inference._repository import Loaded

    model = Recorder()
    validate = Schema.validate
    counted: list[int] = []

    def counting(self: Schema, frame: pd.DataFrame) -> pd.DataFrame:
        counted.append(len(frame))
        return validate(self, frame)

    monkeypatch.setattr(Schema, "validate", counting)
    app = create_app([Loaded("rec", "1", "rec", model, "native")], config=ServeConfig())

    async def scenario() -> tuple[httpx.Response, int, httpx.Response, httpx.Response, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=10) as client:
            before = len(counted)
            good = await client.post("/v2/models/rec/infer", json=GOOD)
            checks = len(counted) - before
            unseen = await client.post("/v2/models/rec/infer",
                                       json=tensors([1.0], [1.0], [True], ["west"], ["pro"], ["x"]))
            frame = await client.post("/invocations", json={"dataframe_records": [
                {"size": 1.0, "count": 3.0, "member": True, "region": "east", "plan": "pro", "note": "n"}]})
            return good, checks, unseen, frame, len(counted) - before

    good, checks, unseen, frame, all_checks = asyncio.run(scenario())
    assert good.status_code == 200, good.text
    assert good.json()["outputs"][0]["data"] == [4.0, 14.0]
    assert checks == 0  # the tensors were checked on their arrays
    assert unseen.status_code == 400 and "region" in unseen.json()["error"] and "west" in unseen.json()["error"]
    assert frame.status_code == 200 and frame.json()["predictions"] == [{"prediction": 6.0}]
    assert all_checks >= 2  # the unseen category and the MLflow frame went through the schema check


def test_a_lone_request_is_not_held_for_the_batch_delay_while_waiting_ones_still_share_a_call() -> None:
    calls: list[int] = []

    def fn(frame: pd.DataFrame, proba: bool) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        calls.append(len(frame))
        time.sleep(0.05)
        return pd.DataFrame({"prediction": frame["x"] * 2}), None

    async def main() -> tuple[float, list]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(fn, executor=pool, max_batch_size=64, max_delay_ms=2000)
            start = time.perf_counter()
            await batcher.submit(pd.DataFrame({"x": [1.0]}))
            lone = time.perf_counter() - start
            together = await asyncio.gather(*(batcher.submit(pd.DataFrame({"x": [float(i)]})) for i in range(5)))
            await batcher.close()
            return lone, together

    lone, together = asyncio.run(main())
    assert lone < 1.0  # run at once, not after the 2 s delay
    assert [p["prediction"].tolist() for p, _ in together] == [[2.0 * i] for i in range(5)]
    # The first of the five found nothing waiting and ran alone; the four queued meanwhile shared one call.
    assert calls[0] == 1 and sum(calls[1:]) == 5 and len(calls) <= 3


def test_prepared_batches_run_prepared_fn_and_mixed_ones_the_checking_fn() -> None:
    used: list[str] = []
    lock = threading.Lock()

    def named(name: str):
        def fn(frame: pd.DataFrame, proba: bool) -> tuple[pd.DataFrame, pd.DataFrame | None]:
            with lock:
                used.append(name)
            return pd.DataFrame({"prediction": frame["x"]}), None
        return fn

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(named("checking"), prepared_fn=named("prepared"), executor=pool, max_delay_ms=50)
            await batcher.submit(pd.DataFrame({"x": [1.0]}), prepared=True)
            await batcher.submit(pd.DataFrame({"x": [1.0]}))
            await asyncio.gather(batcher.submit(pd.DataFrame({"x": [1.0]}), prepared=True),
                                 batcher.submit(pd.DataFrame({"x": [2.0]})))
            await batcher.close()

    asyncio.run(main())
    assert used[:2] == ["prepared", "checking"] and used[2:] and used[-1] == "checking"


def test_a_lone_request_to_a_fast_model_runs_on_the_event_loop_and_a_slow_model_never_does() -> None:
    threads: list[str] = []

    def fn(frame: pd.DataFrame, proba: bool) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        threads.append(threading.current_thread().name)
        time.sleep(0.2 if (frame["x"] < 0).any() else 0)
        return pd.DataFrame({"prediction": frame["x"] * 2}), None

    async def main() -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="batch") as pool:
            fast = Batcher(fn, executor=pool)
            for _ in range(3):  # the first measures the model (in the executor); the next two run inline
                await fast.submit(pd.DataFrame({"x": [1.0]}), alone=True)
            await fast.submit(pd.DataFrame({"x": [1.0]}))  # others were waiting when it came: executor
            await fast.submit(pd.DataFrame({"x": [1.0] * 40}), alone=True)  # too many rows: executor
            slow = Batcher(fn, executor=pool)
            slow.inline_s = 0.1
            for _ in range(2):  # 0.2 s a call: over inline_s, never on the loop
                await slow.submit(pd.DataFrame({"x": [-1.0]}), alone=True)
            await fast.close()
            await slow.close()

    asyncio.run(main())
    loop_thread = threading.current_thread().name
    assert threads[0].startswith("batch") and threads[1:3] == [loop_thread, loop_thread]
    assert threads[3].startswith("batch") and threads[4].startswith("batch")
    assert all(t.startswith("batch") for t in threads[5:]) and len(threads) == 7
