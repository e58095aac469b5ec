"""Prediction logs: inputs, outputs, confidence, model version, latency and time, as Parquet files.

A :class:`PredictionLogger` never slows or fails the caller: :meth:`~PredictionLogger.log` appends
references to what the request already holds (its columns, its outputs) to a bounded queue without
waiting, and counts what it had to drop when the queue is full. A background thread samples the
rows, turns them into Arrow, writes them into a Parquet file (one row group per flush) and *rolls*
it (closes it and starts the next) when it reaches a size or an age. A file being written is
hidden (``.name.parquet.partial``) and renamed when closed, so a reader such as ``gravityml monitor
--logs DIR`` sees only whole files; with an ``s3://`` target each closed file is uploaded under its
final key in one PUT (S3 shows an object whole or not at all) and then removed locally. Under
``serve --workers N`` each worker has its own logger and files (``predictions-STAMP-wI-ID.parquet``).

Columns tagged ``pii`` are hashed (keyed BLAKE2b, so equal values still join) or dropped, as the
catalog entry of the model's training data says (``pii_columns: {email: hash, name: drop}``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from gravityml.errors import SpecError
from gravityml.inference._monitor import LOG_PREFIX
from gravityml.inference._workers import WORKER_ENV

log = logging.getLogger("gravityml.predlog")

PiiAction = Literal["hash", "drop"]
PII_KEY_ENV = "GRAVITYML_PII_KEY"
OUTPUT_COLUMNS = ("prediction", "confidence", "score", "is_anomaly", "lower", "upper")
#: requests turned into Arrow at a time by the writer, and the pause after each chunk: the writer
#: holds the GIL for a few milliseconds at most, then lets the serving thread run
CHUNK = 64
YIELD_SECONDS = 0.002


@dataclass(frozen=True)
class LogConfig:
    """Where and how much to log (the defaults suit a server: small files, every few minutes)."""

    target: str
    sample_rate: float = 1.0
    max_queue: int = 1000  # log() calls waiting for the writer before new ones are dropped
    drain_seconds: float = 0.05  # how often the writer takes what is queued (see _run)
    roll_bytes: int = 32 * 1024 * 1024
    roll_seconds: float = 300.0
    flush_rows: int = 2000  # rows buffered before a row group is written
    flush_seconds: float = 5.0
    pii: Mapping[str, PiiAction] | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.sample_rate <= 1.0:
            raise SpecError("--log-sample-rate", "must be in (0, 1]", allowed="(0, 1]", got=self.sample_rate,
                            fix="give e.g. 0.1 to log one row in ten")
        for column, action in (self.pii or {}).items():
            if action not in ("hash", "drop"):
                raise SpecError(f"pii_columns.{column}", "unknown action", allowed=["hash", "drop"], got=action,
                                fix="write hash or drop")


def pii_columns_for(lineage: Mapping[str, str], base_dir: Path | None = None) -> dict[str, PiiAction]:
    """The ``pii_columns`` of the catalog dataset the model was trained on (empty when none applies)."""
    from gravityml.data import find_catalog, load_catalog

    if find_catalog(base_dir) is None:
        return {}
    catalog = load_catalog(base_dir=base_dir)
    uri = lineage.get("data_uri", "")
    for name, entry in catalog.datasets.items():
        same = name == lineage.get("dataset") or entry.uri == uri or (
            entry.uri and uri.endswith("/" + entry.uri.lstrip("./")))
        if same:
            return dict(getattr(entry, "pii_columns", None) or {})
    return {}


@dataclass(frozen=True)
class _Item:
    """One ``log()`` call as the caller handed it over: references only, nothing converted."""

    inputs: Any  # a DataFrame, or a mapping of column name to array (what a decoded request holds)
    outputs: Any
    rows: int
    model_version: str
    role: str
    latency_ms: float
    time_s: float


class PredictionLogger:
    """Background Parquet writer of prediction logs (see the module docstring).

    The caller's side (:meth:`log`) is an append to a bounded deque under a lock only callers take:
    it never waits for the writer, never wakes it per call, and converts nothing. The writer
    thread wakes every ``drain_seconds`` (or when the queue is half full), takes what is queued, and
    turns it into Arrow a few requests at a time, sleeping a moment between chunks so that the
    serving thread gets the GIL back quickly. A row is counted once: written (``logged_rows``) or
    dropped (``dropped_rows``: the queue was full, or writing failed).

    Why every 50 ms and not once a second: a queued request holds pandas frames, dozens of objects
    the cyclic garbage collector tracks. Left queued for long, they outlive two young collections
    and are promoted to the oldest generation, whose growth then triggers full collections: each
    one walks the whole heap of a serving process (sklearn, pandas, MLflow: ~230k objects) and
    stops every thread for a few hundred milliseconds, which is what a p99 sees. Drained within
    50 ms they die young (``benchmarks/predlog.py --gc-only``: no full collection in 2,000 logged
    requests, against one of 505 ms at a 0.5 s drain).
    """

    def __init__(self, config: LogConfig) -> None:
        self.config = config
        self.logged_rows = 0
        self.files: list[str] = []
        self.upload_failures = 0
        self._pending: deque[_Item] = deque()
        self._put_lock = threading.Lock()  # callers only: the writer never takes it
        self._dropped_full = 0  # callers' count (under _put_lock)
        self._dropped_failed = 0  # the writer's count
        #: Called with each count of rows written / dropped (``serve``: its Prometheus counters).
        self.on_logged: Callable[[int], None] | None = None
        self.on_dropped: Callable[[int], None] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._rng = np.random.default_rng()
        self._key = (os.environ.get(PII_KEY_ENV) or "gravityml").encode()
        self._local, self._remote = _split_target(config.target)
        # Under ``serve --workers N`` every worker writes its own files into the folder, named by worker.
        worker = os.environ.get(WORKER_ENV, "")
        self._worker = f"-w{worker}" if worker.isdigit() else ""
        self._local.mkdir(parents=True, exist_ok=True)
        self._unpublished: list[Path] = []  # closed files whose upload failed: tried again later
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    @property
    def dropped_rows(self) -> int:
        """Rows not written: the queue was full when they came, or their batch could not be written."""
        return self._dropped_full + self._dropped_failed

    @property
    def queued(self) -> int:
        """Requests waiting for the writer."""
        return len(self._pending)

    # ---- the caller's side: never blocks --------------------------------------------------------

    def log(self, inputs: pd.DataFrame | Mapping[str, Any], outputs: pd.DataFrame, *, model_version: str,
            latency_ms: float, role: str = "served") -> None:
        """Queue these rows for writing; drop and count them when the queue is full.

        ``inputs`` is a frame or the request's columns as a mapping of arrays (cheaper: no frame is
        built for the log). ``role`` says why the rows were answered (``served``, or ``shadow`` for a
        mirrored copy) and is written as ``_gml_role``. Only references are queued; sampling,
        conversion and writing happen on the writer thread.
        """
        rows = len(inputs) if isinstance(inputs, pd.DataFrame) else _mapping_rows(inputs)
        item = _Item(inputs, outputs, rows, model_version, role, float(latency_ms), time.time())
        with self._put_lock:
            if len(self._pending) >= self.config.max_queue:
                self._dropped_full += rows
                if self.on_dropped is not None:
                    self.on_dropped(rows)
                return
            self._pending.append(item)
            if len(self._pending) * 2 >= self.config.max_queue:
                self._wake.set()  # rare: only when the writer has fallen half a queue behind

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, close the open file, stop the writer."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ---- the writer thread: conversion -----------------------------------------------------------

    def _sampled(self, item: _Item) -> _Item | None:
        rate = self.config.sample_rate
        if rate >= 1.0:
            return item
        keep = self._rng.random(item.rows) < rate
        if not keep.any():
            return None
        if keep.all():
            return item
        if isinstance(item.inputs, pd.DataFrame):
            inputs: Any = item.inputs[keep].reset_index(drop=True)
        else:
            inputs = {k: np.asarray(v)[keep] for k, v in item.inputs.items()}
        outputs = item.outputs[keep].reset_index(drop=True)
        return replace(item, inputs=inputs, outputs=outputs, rows=int(keep.sum()))

    def _table(self, items: list[_Item]) -> Any:
        """The log rows of some queued requests as one Arrow table: inputs, outputs, then the _gml_ columns.

        Built column by column without pandas' per-frame machinery (one concat per chunk, no
        per-request Series), so the writer holds the GIL for little time per request.
        """
        import pyarrow as pa

        columns: dict[str, Any] = {}
        maps = [i.inputs for i in items if not isinstance(i.inputs, pd.DataFrame)]
        if len(maps) == len(items) and all(m.keys() == maps[0].keys() for m in maps):
            # the requests' own arrays (a decoded request's columns), joined column by column
            for name in maps[0]:
                columns[str(name)] = _arrow(np.concatenate([m[name] for m in maps], axis=None))  # flattened
        else:
            frames = [i.inputs if isinstance(i.inputs, pd.DataFrame) else pd.DataFrame(dict(i.inputs)) for i in items]
            columns.update(_frame_columns(pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]))
        outputs = pd.concat([i.outputs for i in items], ignore_index=True) if len(items) > 1 else items[0].outputs
        for name in OUTPUT_COLUMNS:
            if name in outputs.columns:
                columns[f"{LOG_PREFIX}{name}"] = _arrow(outputs[name])
        sizes = [i.rows for i in items]
        columns[f"{LOG_PREFIX}model_version"] = pa.array(np.repeat([i.model_version for i in items], sizes).tolist(),
                                                         pa.string())
        columns[f"{LOG_PREFIX}role"] = pa.array(np.repeat([i.role for i in items], sizes).tolist(), pa.string())
        columns[f"{LOG_PREFIX}latency_ms"] = pa.array(np.repeat([i.latency_ms for i in items], sizes), pa.float64())
        micros = np.repeat(np.array([i.time_s for i in items]) * 1e6, sizes).astype("int64")
        columns[f"{LOG_PREFIX}time"] = pa.array(micros, pa.timestamp("us", tz="UTC"))
        return pa.table(self._protect(columns))

    def _protect(self, columns: dict[str, Any]) -> dict[str, Any]:
        import pyarrow as pa

        for column, action in (self.config.pii or {}).items():
            if column not in columns:
                continue
            if action == "drop":
                del columns[column]
            else:
                columns[column] = pa.array([
                    None if v is None else hashlib.blake2b(str(v).encode(), key=self._key, digest_size=16).hexdigest()
                    for v in columns[column].to_pylist()
                ], pa.string())
        return columns

    def _convert(self, items: list[_Item]) -> Iterator[Any]:
        """Arrow tables of ``items``: ``CHUNK`` requests (or ``flush_rows`` rows) at a time, with a pause
        after each chunk so that the serving thread gets the GIL back."""

        start = 0
        while start < len(items):
            end, rows = start, 0
            while end < len(items) and end - start < CHUNK and rows < self.config.flush_rows:
                rows += items[end].rows
                end += 1
            chunk = [s for s in (self._sampled(i) for i in items[start:end]) if s is not None]
            start = end
            if chunk:
                try:
                    table = self._table(chunk)
                except Exception:  # noqa: BLE001 - one bad batch must not stop the log
                    log.exception("prediction log: %d rows could not be converted", sum(i.rows for i in chunk))
                    self._failed(sum(i.rows for i in chunk))
                else:
                    yield table
            time.sleep(YIELD_SECONDS)

    def _failed(self, rows: int) -> None:
        self._dropped_failed += rows
        if self.on_dropped is not None:
            self.on_dropped(rows)

    # ---- the writer thread: files ----------------------------------------------------------------

    def _run(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer: Any = None
        path: Path | None = None
        opened = 0.0
        buffer: list[Any] = []  # Arrow tables not yet written
        buffered = 0
        last_flush = time.monotonic()

        def roll() -> None:
            nonlocal writer, path
            if writer is None or path is None:
                return
            writer.close()
            final = path.with_name(path.name.removeprefix(".").removesuffix(".partial"))
            os.replace(path, final)
            writer, path = None, None
            self._publish(final)

        def write(table: Any) -> None:
            nonlocal writer, path, opened
            if writer is not None and not table.schema.equals(writer.schema):
                try:
                    table = table.cast(writer.schema)  # e.g. a column all empty in this batch
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError):
                    roll()  # new columns or types: a new file, so each file has one schema
            if writer is None:
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                path = self._local / f".predictions-{stamp}{self._worker}-{uuid.uuid4().hex[:8]}.parquet.partial"
                writer = pq.ParquetWriter(path, table.schema)
                opened = time.monotonic()
            writer.write_table(table)
            self.logged_rows += table.num_rows
            if self.on_logged is not None:
                self.on_logged(table.num_rows)

        def flush() -> None:
            nonlocal buffer, buffered, last_flush
            last_flush = time.monotonic()
            tables, buffer, buffered = buffer, [], 0
            for group in _same_schema_runs(tables):
                rows = sum(t.num_rows for t in group)
                try:
                    write(pa.concat_tables(group) if len(group) > 1 else group[0])
                except Exception:  # noqa: BLE001 - keep logging what can be logged
                    log.exception("prediction log: %d rows could not be written", rows)
                    self._failed(rows)
            assert path is None or writer is not None
            if path is not None and (path.stat().st_size >= self.config.roll_bytes
                                     or time.monotonic() - opened >= self.config.roll_seconds):
                roll()

        while True:
            self._wake.wait(self.config.drain_seconds)
            self._wake.clear()
            stopping = self._stop.is_set()
            items = []
            while self._pending:
                items.append(self._pending.popleft())
            for table in self._convert(items):
                buffer.append(table)
                buffered += table.num_rows
                if buffered >= self.config.flush_rows:
                    flush()
            now = time.monotonic()
            if buffer and (stopping or now - last_flush >= self.config.flush_seconds):
                flush()
            elif not buffer:
                last_flush = now
            if writer is not None and (stopping or now - opened >= self.config.roll_seconds):
                try:
                    roll()
                except Exception:  # noqa: BLE001
                    log.exception("prediction log: a file could not be closed")
            if stopping and not self._pending:
                self._retry_uploads()
                if self._remote is not None and not self._unpublished:
                    shutil.rmtree(self._local, ignore_errors=True)  # the local spool of an s3:// target
                return

    def _publish(self, path: Path) -> None:
        if self._remote is None:
            self.files.append(str(path))
            return
        self._unpublished.append(path)
        self._retry_uploads()

    def _retry_uploads(self) -> None:
        """Upload closed files to the s3:// prefix: one PUT each to its final key (S3 shows an object
        whole or not at all), then the local copy is removed. A failed upload stays here for the next try."""
        if self._remote is None or not self._unpublished:
            return
        from gravityml.data import s3_filesystem

        prefix = self._remote.removeprefix("s3://").rstrip("/")
        try:
            s3 = s3_filesystem()
        except Exception:  # noqa: BLE001
            log.exception("prediction log: no S3 filesystem for %s", self._remote)
            self.upload_failures += 1
            return
        for path in list(self._unpublished):
            key = f"{prefix}/{path.name}"
            try:
                with path.open("rb") as source, s3.open_output_stream(key) as sink:
                    sink.write(source.read())
            except Exception:  # noqa: BLE001 - kept locally, tried again at the next roll or close
                log.exception("prediction log: %s could not be uploaded to s3://%s (kept in %s)", path.name, key,
                              path.parent)
                self.upload_failures += 1
                continue
            path.unlink()
            self._unpublished.remove(path)
            self.files.append(f"s3://{key}")


def _frame_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """A frame's columns as Arrow arrays: the number columns of one dtype in one ``to_numpy`` (one
    call for all of them, not a Series per column), the others one by one."""
    import pyarrow as pa

    groups: dict[np.dtype[Any], list[Any]] = {}
    others = []
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            groups.setdefault(dtype, []).append(name)
        else:
            others.append(name)
    arrays: dict[Any, Any] = {}
    for dtype, names in groups.items():
        part = frame if len(names) == frame.shape[1] else frame[names]
        block = np.ascontiguousarray(part.to_numpy(dtype=dtype).T)
        for j, name in enumerate(names):
            arrays[name] = pa.array(block[j])
    for name in others:
        arrays[name] = _arrow(frame[name])
    return {str(name): arrays[name] for name in frame.columns}


def _arrow(values: Any) -> Any:
    """An Arrow array of a column (numpy array or pandas Series); NaN in floats stays NaN, None is null."""
    import pyarrow as pa

    if isinstance(values, pd.Series):
        values = values.array if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) else values.to_numpy()
    if isinstance(values, np.ndarray) and values.dtype == object:
        return pa.array(values, from_pandas=True)  # None and NaN in text columns are nulls
    return pa.array(values)


def _mapping_rows(columns: Mapping[str, Any]) -> int:
    for values in columns.values():
        return len(values)
    return 0


def _same_schema_runs(tables: list[Any]) -> list[list[Any]]:
    runs: list[list[Any]] = []
    for table in tables:
        if runs and runs[-1][0].schema.equals(table.schema):
            runs[-1].append(table)
        else:
            runs.append([table])
    return runs


def _split_target(target: str) -> tuple[Path, str | None]:
    """A local folder to write in, and the s3:// prefix to upload closed files to (if any)."""
    if target.startswith("s3://"):
        import tempfile

        return Path(tempfile.mkdtemp(prefix="predlog-")), target
    if "://" in target and not target.startswith("file://"):
        raise SpecError("--log-predictions", "unsupported location", allowed=["a folder", "file://...", "s3://..."],
                        got=target, fix="give a local folder or an s3:// prefix")
    return Path(target.removeprefix("file://")), None
