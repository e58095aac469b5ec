"""Dynamic batching: concurrent requests to one model are predicted together and split back.

One worker task per model takes the first waiting request, gathers more until the batch holds
``max_batch_size`` rows or ``max_delay_ms`` has passed, runs the model once in a thread (the event
loop keeps serving), and hands each request its own rows. While a batch runs, new requests queue,
so under load batches fill without waiting. This is the scheme of Triton's dynamic batcher
(https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/model_configuration.html#dynamic-batcher),
with one difference: a request that finds nothing else waiting runs at once, never held for
``max_delay_ms`` (the delay is spent only while a batch is already forming), so a lone client pays
no batching latency.

Requests whose rows were already checked against the schema are ``prepared``: a batch of only
those runs ``prepared_fn``, which skips the model's own (pandas) schema check. Tensor requests
come as :class:`Columns` (their decoded numpy columns): no frame is built per request; the
batch thread joins the columns of the whole batch and checks them once on the numpy arrays
(``Columns.prepare``), so the event loop does no pandas work for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gravityml.errors import GravityMLError

#: Runs a batch: the concatenated rows -> (predict's frame, class probabilities or None).
BatchFn = Callable[[pd.DataFrame, bool], tuple[pd.DataFrame, pd.DataFrame | None]]


class QueueFull(Exception):
    """The model already holds ``max_queue`` requests: answered 503 with Retry-After (gRPC RESOURCE_EXHAUSTED)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the model's queue is full ({limit} requests waiting or running)")
        self.limit = limit


class DeadlineExceeded(Exception):
    """The request's deadline passed before its batch ran: it was not run (504)."""


class BatcherClosed(Exception):
    """The model version was unloaded: its batcher takes no more requests (503, retry)."""


@dataclass(frozen=True)
class Columns:
    """A request's rows as numpy columns (a tensor request as decoded), not yet a frame.

    ``prepare`` turns the columns of one or more such requests, joined, into the frame the
    model's schema check would return (then ``prepared_fn`` runs it), or None where the model's
    own check must run (on a frame of the joined columns).
    """

    columns: dict[str, np.ndarray]
    rows: int
    prepare: Callable[[dict[str, np.ndarray], int], pd.DataFrame | None] | None = None
    #: Raises (a GravityMLError) for an answer that must not be sent (e.g. a NaN the model computed):
    #: run in the batch thread on the batch's answer, and on each request's part only when it raises,
    #: so that only the requests whose rows caused it fail.
    check: Callable[[pd.DataFrame, pd.DataFrame | None], None] | None = None

    def __len__(self) -> int:
        return self.rows

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns)


@dataclass
class _Item:
    frame: pd.DataFrame | Columns
    probabilities: bool
    future: asyncio.Future[tuple[pd.DataFrame, pd.DataFrame | None]] = field(repr=False)
    enqueued_ns: int = field(default_factory=time.perf_counter_ns)
    #: The event loop's time past which the request is not run (None: no deadline).
    deadline: float | None = None
    #: The rows were checked against the schema already (``prepared_fn`` may run them as they are).
    prepared: bool = False
    #: Nothing else was waiting when it came: it may run on the event loop (see ``Batcher.inline_s``).
    alone: bool = False


@dataclass
class BatchStats:
    """Cumulative counts and times as Triton reports them (``queue``: waiting for a batch;
    ``compute``: the model call, counted once per request it served)."""

    executions: int = 0
    queue_count: int = 0
    queue_ns: int = 0
    compute_count: int = 0
    compute_ns: int = 0
    #: batch size (requests) -> [model calls, their total ns]
    batches: dict[int, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Batcher:
    """Gathers requests for one model into batches run by ``fn`` in ``executor``."""

    def __init__(
        self,
        fn: BatchFn,
        *,
        executor: Executor,
        max_batch_size: int = 64,
        max_delay_ms: float = 2.0,
        on_batch: Callable[[int, int], None] | None = None,
        max_queue: int = 0,
        prepared_fn: BatchFn | None = None,
    ) -> None:
        self.fn = fn
        #: Runs a batch whose every request is ``prepared`` (None: ``fn`` runs every batch).
        self.prepared_fn = prepared_fn
        self.executor = executor
        self.max_batch_size = max(1, max_batch_size)
        self.max_delay_s = max(0.0, max_delay_ms) / 1000
        self.on_batch = on_batch
        #: Most requests queued or running at once (0: unbounded); past it submit raises QueueFull.
        self.max_queue = max(0, max_queue)
        self.expired = 0
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._inflight = 0
        self._carry: _Item | None = None
        self._closed = False
        self.stats = BatchStats()
        #: A lone request (``submit(alone=True)``, nothing queued) of at most ``inline_rows`` rows runs
        #: on the event loop instead of the executor when lone calls have taken under ``inline_s``
        #: (a moving average; the first one always goes to the executor): two thread wake-ups less,
        #: which on a busy machine are each a wait for a CPU. A slow model never blocks the loop.
        self.inline_s = 0.05
        self.inline_rows = 16
        self._lone_s: float | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def pending(self) -> int:
        """Requests queued or running."""
        return self._inflight

    async def submit(
        self, frame: pd.DataFrame | Columns, *, probabilities: bool = False, timeout_s: float | None = None,
        prepared: bool = False, alone: bool = False,
    ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """Predict ``frame`` as part of a batch; raises what predicting it alone would raise.

        ``prepared``: ``frame`` is already what the model's schema check returns (see the module's
        docstring); a :class:`Columns` is checked in the batch thread, with the rest of its batch. Raises QueueFull at once when ``max_queue`` requests are already queued or running, and
        DeadlineExceeded when ``timeout_s`` passed before the request's batch ran (it is then not run).
        """
        if self._closed:  # a closed batcher's worker is never restarted (it would run unwatched)
            raise BatcherClosed("this model version was unloaded; retry, the name's default version answers")
        if self.max_queue and self._inflight >= self.max_queue:
            raise QueueFull(self.max_queue)
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        deadline = loop.time() + timeout_s if timeout_s is not None else None
        self._inflight += 1
        try:
            await self._queue.put(_Item(frame, probabilities, future, deadline=deadline, prepared=prepared,
                                        alone=alone))
            # A caller that gives up (timeout) cancels its future: a batch not yet run skips it, a
            # running one leaves it alone (see _settle).
            return await future
        finally:
            self._inflight -= 1

    async def close(self) -> None:
        """Finish every queued request, then stop the worker; later submits raise BatcherClosed."""
        self._closed = True
        if self._task is None:
            return
        await self._queue.put(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _gather(self, first: _Item) -> tuple[list[_Item], bool]:
        batch, rows = [first], len(first.frame)
        if self._queue.empty():  # nothing else is waiting: run it at once, not held for the delay
            return batch, False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay_s
        while rows < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if item is None:
                return batch, True
            if rows + len(item.frame) > self.max_batch_size:
                # Too big to join: it starts the next batch (a request is never split).
                self._carry = item
                break
            batch.append(item)
            rows += len(item.frame)
        return batch, False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self._carry = None
        stopping = False
        while not stopping or self._carry is not None:
            if self._carry is not None:
                first, self._carry = self._carry, None
            else:
                got = await self._queue.get()
                if got is None:
                    break
                first = got
            batch, stopping_now = await self._gather(first)
            stopping = stopping or stopping_now
            now = loop.time()
            live = []
            for item in batch:
                if item.future.done():
                    continue
                if item.deadline is not None and now >= item.deadline:  # expired while queued: not run
                    self.expired += 1
                    item.future.set_exception(DeadlineExceeded())
                    continue
                live.append(item)
            if not live:
                continue
            lone = len(live) == 1 and len(live[0].frame) <= self.inline_rows
            if lone and live[0].alone and self._queue.empty() and self._lone_s is not None and self._lone_s < self.inline_s:
                started = time.perf_counter()
                self._predict(live)
            else:
                started = time.perf_counter()
                await loop.run_in_executor(self.executor, self._predict, live)
            if lone:
                took = time.perf_counter() - started
                self._lone_s = took if self._lone_s is None else 0.8 * self._lone_s + 0.2 * took
        # The close marker may have arrived while the carry was pending: nothing else is queued.

    def _predict(self, batch: list[_Item]) -> None:
        """Runs in the executor thread: one call for the batch, split back by row counts."""
        loop = self._loop_of(batch)
        want_proba = any(item.probabilities for item in batch)
        started = time.perf_counter_ns()
        try:
            frame, prepared = _joined(batch)
            fn = self.prepared_fn if self.prepared_fn is not None and prepared else self.fn
            predicted, proba = fn(frame, want_proba)
            self._count(batch, started, time.perf_counter_ns() - started)
        except GravityMLError as exc:
            if len(batch) == 1:
                loop.call_soon_threadsafe(_settle, batch[0].future, None, exc)
                return
            # One request's rows spoiled the batch: run each alone so only that one fails.
            for item in batch:
                self._predict([item])
            return
        except BaseException as exc:  # a bug: every request in the batch learns of it
            for item in batch:
                loop.call_soon_threadsafe(_settle, item.future, None, exc)
            return
        if self.on_batch is not None:
            self.on_batch(len(batch), len(frame))
        predicted = _plain_text(predicted)
        check = next((i.frame.check for i in batch if isinstance(i.frame, Columns) and i.frame.check), None)
        try:
            if check is not None:
                check(predicted, proba)  # once for the batch; per request only when it fails
            check = None
        except GravityMLError:
            pass
        start = 0
        for item in batch:
            stop = start + len(item.frame)
            if len(batch) == 1:
                part = _numbered(predicted)
                part_proba = _numbered(proba) if proba is not None and item.probabilities else None
            else:
                part = predicted.iloc[start:stop].reset_index(drop=True)
                part_proba = proba.iloc[start:stop].reset_index(drop=True) if proba is not None and item.probabilities else None
            start = stop
            own = item.frame.check if isinstance(item.frame, Columns) else None
            if check is not None and own is not None:
                try:
                    own(part, part_proba)
                except GravityMLError as exc:
                    loop.call_soon_threadsafe(_settle, item.future, None, exc)
                    continue
            loop.call_soon_threadsafe(_settle, item.future, (part, part_proba), None)

    def _count(self, batch: list[_Item], started: int, compute_ns: int) -> None:
        stats = self.stats
        with stats.lock:
            stats.executions += 1
            stats.queue_count += len(batch)
            stats.queue_ns += sum(max(0, started - item.enqueued_ns) for item in batch)
            stats.compute_count += len(batch)
            stats.compute_ns += compute_ns * len(batch)
            entry = stats.batches.setdefault(len(batch), [0, 0])
            entry[0] += 1
            entry[1] += compute_ns

    @staticmethod
    def _loop_of(batch: list[_Item]) -> asyncio.AbstractEventLoop:
        return batch[0].future.get_loop()


def _plain_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text columns (pandas' Arrow-backed ``str``) as Python strings in numpy
    object arrays: converted once per batch, not once per request when each answer is encoded."""
    text = [name for name, dtype in frame.dtypes.items() if isinstance(dtype, pd.StringDtype)]
    return frame.astype(dict.fromkeys(text, object)) if text else frame


def _numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with rows numbered from 0, as a request's slice of a batch is (no copy when they are)."""
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return frame
    return frame.reset_index(drop=True)


def _joined(batch: list[_Item]) -> tuple[pd.DataFrame, bool]:
    """The batch's rows as one frame, and whether it is prepared (``prepared_fn`` may run it).

    A batch of only :class:`Columns` is joined column by column (one ``np.concatenate`` each) and
    checked once by ``prepare``; otherwise each request becomes a frame and they are concatenated.
    """
    parts = [item.frame for item in batch]
    first = parts[0]
    if isinstance(first, Columns) and all(isinstance(p, Columns) for p in parts):  # one batcher: one model's
        if len(parts) == 1:
            columns, rows = first.columns, first.rows
        else:
            columns = {name: np.concatenate([p.columns[name] for p in parts])  # type: ignore[union-attr]
                       for name in first.columns}
            rows = sum(p.rows for p in parts)  # type: ignore[union-attr]
        checked = first.prepare(columns, rows) if first.prepare is not None else None
        if checked is not None:
            return checked, True
        return pd.DataFrame(columns), False
    frames = [p.frame() if isinstance(p, Columns) else p for p in parts]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame, all(item.prepared for item in batch)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up (timeout) meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
