"""Back-pressure and deadlines through the application: past --max-queue a 503 with Retry-After at
once, and a request whose deadline passed while queued is not run (in-process, a deliberately slow model)."""

from __future__ import annotations

import asyncio

import httpx
from tests.inference.test_app import SlowModel, body


class CountingSlow(SlowModel):
    flavor = "test-slow-counting"

    def __init__(self, pause: float) -> None:
        super().__init__(pause)
        self.seen: list[float] = []

    def _predict(self, frame):  # type: ignore[no-untyped-def]
        self.seen.extend(frame["x"].tolist())
        return super()._predict(frame)


def _app(model: SlowModel, **config: object):  # type: ignore[no-untyped-def]
    from gravityml.inference import ServeConfig, create_app
    from gravityml.inference._repository import Loaded

    return create_app([Loaded("slow", "1", "slow", model, "native")], config=ServeConfig(max_batch_size=1, **config))


def test_a_burst_past_max_queue_gets_503_with_retry_after_and_the_admitted_ones_answer() -> None:
    model = CountingSlow(pause=0.2)
    app = _app(model, max_queue=2)

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30) as client:
            return list(await asyncio.gather(*(client.post("/v2/models/slow/infer", json=body(float(i + 1)))
                                               for i in range(12))))

    answers = asyncio.run(scenario())
    codes = [r.status_code for r in answers]
    assert set(codes) == {200, 503} and codes.count(200) >= 2, codes
    for r in answers:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1" and "queue is full" in r.json()["error"]
    # refused requests never reached the model; admitted ones got their own rows
    admitted = {r.json()["outputs"][0]["data"][0] / 2 for r in answers if r.status_code == 200}
    assert {x for x in model.seen if x > 0} == admitted and len(admitted) == codes.count(200)


def test_a_request_whose_deadline_passed_in_the_queue_is_not_run_and_says_so() -> None:
    model = CountingSlow(pause=0.6)
    app = _app(model)

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30) as client:
            first = asyncio.create_task(client.post("/v2/models/slow/infer", json=body(1.0)))
            await asyncio.sleep(0.1)  # the first batch is running
            late = await client.post("/v2/models/slow/infer", json=body(5.0), headers={"X-Timeout-Ms": "50"})
            bad = await client.post("/v2/models/slow/infer", json=body(5.0), headers={"X-Timeout-Ms": "soon"})
            return await first, late, bad

    first, late, bad = asyncio.run(scenario())
    assert first.status_code == 200
    assert late.status_code in (503, 504) and "not run" in late.json()["error"]
    assert bad.status_code == 400 and "x-timeout-ms" in bad.json()["error"]
    assert 5.0 not in model.seen  # the expired request's row never reached the model
