"""Dynamic batching: gathered, run once off the event loop, split back, failures kept apart."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pytest

from gravityml.errors import SchemaError
from gravityml.inference._batcher import Batcher


def doubling(calls: list[int], threads: set[str], pause: float = 0.0):
    def fn(frame: pd.DataFrame, proba: bool) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        calls.append(len(frame))
        threads.add(threading.current_thread().name)
        if (frame["x"] < 0).any():
            raise SchemaError("negative x", got=int(frame["x"].min()))
        time.sleep(pause)
        out = pd.DataFrame({"prediction": frame["x"] * 2})
        return out, (pd.DataFrame({"p": frame["x"] * 0.5}) if proba else None)
    return fn


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_model_calls_and_get_their_own_rows() -> None:
    calls: list[int] = []
    threads: set[str] = set()

    async def main() -> list:
        with ThreadPoolExecutor(1, thread_name_prefix="batch") as pool:
            batcher = Batcher(doubling(calls, threads, 0.02), executor=pool, max_batch_size=16, max_delay_ms=20)
            frames = [pd.DataFrame({"x": [i, i + 100]}) for i in range(20)]
            results = await asyncio.gather(*(batcher.submit(f, probabilities=i % 2 == 0) for i, f in enumerate(frames)))
            await batcher.close()
            return results

    results = run(main())
    for i, (predicted, proba) in enumerate(results):
        assert predicted["prediction"].tolist() == [2 * i, 2 * (i + 100)]
        assert (proba is not None) == (i % 2 == 0)
    assert sum(calls) == 40 and len(calls) < 20  # fewer model calls than requests
    assert max(calls) <= 16  # never more rows than max_batch_size
    assert threads == {"batch_0"}  # run in the executor, not on the event loop's thread


def test_a_bad_request_fails_alone() -> None:
    calls: list[int] = []

    async def main() -> list:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(doubling(calls, set()), executor=pool, max_batch_size=64, max_delay_ms=30)
            frames = [pd.DataFrame({"x": [-1 if i == 3 else i]}) for i in range(6)]
            outcome = await asyncio.gather(*(batcher.submit(f) for f in frames), return_exceptions=True)
            await batcher.close()
            return outcome

    outcome = run(main())
    assert isinstance(outcome[3], SchemaError)
    assert [o[0]["prediction"].tolist() for i, o in enumerate(outcome) if i != 3] == [[0], [2], [4], [8], [10]]


def test_the_event_loop_keeps_running_while_a_batch_computes() -> None:
    ticks: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    async def main() -> None:
        stop = asyncio.Event()
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(doubling([], set(), pause=0.5), executor=pool, max_batch_size=8, max_delay_ms=0)
            task = asyncio.create_task(ticker(stop))
            await batcher.submit(pd.DataFrame({"x": [1]}))
            stop.set()
            await task
            await batcher.close()

    run(main())
    assert len(ticks) >= 20  # the loop ticked every ~10 ms during the 0.5 s model call


def test_a_caller_that_gives_up_is_skipped_and_close_drains_the_rest() -> None:
    calls: list[int] = []

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(doubling(calls, set(), pause=0.2), executor=pool, max_batch_size=1, max_delay_ms=0)
            first = asyncio.create_task(batcher.submit(pd.DataFrame({"x": [1]})))
            await asyncio.sleep(0.05)  # the first batch is running
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(batcher.submit(pd.DataFrame({"x": [2]})), 0.05)
            queued = asyncio.create_task(batcher.submit(pd.DataFrame({"x": [3]})))
            await asyncio.sleep(0)
            await batcher.close()
            assert (await first)[0]["prediction"].tolist() == [2]
            assert (await queued)[0]["prediction"].tolist() == [6]

    run(main())
    assert calls == [1, 1]  # the abandoned request never reached the model


def test_past_max_queue_submit_refuses_at_once_and_the_queued_ones_still_run() -> None:
    from gravityml.inference._batcher import QueueFull

    calls: list[int] = []

    async def main() -> tuple[list, list]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(doubling(calls, set(), 0.2), executor=pool, max_batch_size=1, max_queue=3)
            tasks = [asyncio.ensure_future(batcher.submit(pd.DataFrame({"x": [i]}))) for i in range(3)]
            await asyncio.sleep(0)  # the three are in
            refused = []
            for i in range(5):
                with pytest.raises(QueueFull):
                    await batcher.submit(pd.DataFrame({"x": [i]}))
                refused.append(i)
            answers = await asyncio.gather(*tasks)
            await batcher.close()
            return answers, refused

    answers, refused = run(main())
    assert [int(a[0]["prediction"][0]) for a in answers] == [0, 2, 4]
    assert refused == [0, 1, 2, 3, 4] and calls == [1, 1, 1]  # refused ones never reached the model


def test_a_request_whose_deadline_passed_while_queued_is_not_run() -> None:
    from gravityml.inference._batcher import DeadlineExceeded

    calls: list[int] = []

    async def main() -> tuple[Any, Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(doubling(calls, set(), 0.3), executor=pool, max_batch_size=1)
            slow = asyncio.ensure_future(batcher.submit(pd.DataFrame({"x": [1]})))
            await asyncio.sleep(0.05)  # the first batch is running (0.3 s)
            late = asyncio.ensure_future(batcher.submit(pd.DataFrame({"x": [7]}), timeout_s=0.01))
            results = await asyncio.gather(slow, late, return_exceptions=True)
            await batcher.close()
            return results[0], results[1]

    first, second = run(main())
    assert int(first[0]["prediction"][0]) == 2
    assert isinstance(second, DeadlineExceeded)
    assert calls == [1]  # the expired request's row never reached the model
