"""Prediction logs: inputs, outputs, confidence, model version, latency and time, as Parquet files.

A :class:`PredictionLogger` never slows or fails the caller: :meth:`~PredictionLogger.log` samples
the rows, puts one batch on a bounded queue without waiting, and counts what it had to drop when
the queue is full. A background thread writes the batches into a Parquet file (one row group per
flush) and *rolls* it (closes it and starts the next) when it reaches a size or an age. A file
being written is hidden (``.name.parquet.partial``) and renamed when closed, so a reader such as
``gravityml monitor --logs DIR`` sees only whole files.

Columns tagged ``pii`` are hashed (keyed BLAKE2b, so equal values still join) or dropped, as the
catalog entry of the model's training data says (``pii_columns: {email: hash, name: drop}``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from gravityml.errors import SpecError
from gravityml.inference._monitor import LOG_PREFIX

log = logging.getLogger("gravityml.predlog")

PiiAction = Literal["hash", "drop"]
PII_KEY_ENV = "GRAVITYML_PII_KEY"
OUTPUT_COLUMNS = ("prediction", "confidence", "score", "is_anomaly", "lower", "upper")


@dataclass(frozen=True)
class LogConfig:
    """Where and how much to log (the defaults suit a server: small files, every few minutes)."""

    target: str
    sample_rate: float = 1.0
    max_queue: int = 1000  # batches waiting for the writer before new ones are dropped
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


class PredictionLogger:
    """Background Parquet writer of prediction logs (see the module docstring)."""

    def __init__(self, config: LogConfig) -> None:
        self.config = config
        self.logged_rows = 0
        self.dropped_rows = 0
        self.files: list[str] = []
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=config.max_queue)
        self._rng = np.random.default_rng()
        self._key = (os.environ.get(PII_KEY_ENV) or "gravityml").encode()
        self._local, self._remote = _split_target(config.target)
        self._local.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    # ---- the caller's side: never blocks --------------------------------------------------------

    def log(self, inputs: pd.DataFrame, outputs: pd.DataFrame, *, model_version: str, latency_ms: float) -> None:
        """Queue these rows for writing; drop and count them when the queue is full.

        Only references go on the queue (the frames are not copied here): sampling, building the
        log rows and writing them all happen on the writer thread, off the request path.
        """
        try:
            self._queue.put_nowait((inputs, outputs, model_version, float(latency_ms), pd.Timestamp.now(tz="UTC")))
        except queue.Full:
            self.dropped_rows += len(inputs)

    def _rows(self, items: list[tuple[pd.DataFrame, pd.DataFrame, str, float, pd.Timestamp]]) -> pd.DataFrame:
        """One frame of log rows for many queued requests (built once per flush, not per request)."""
        inputs = pd.concat([i[0] for i in items], ignore_index=True)
        outputs = pd.concat([i[1] for i in items], ignore_index=True)
        sizes = [len(i[0]) for i in items]
        frame = inputs
        for name in OUTPUT_COLUMNS:
            if name in outputs.columns:
                frame[f"{LOG_PREFIX}{name}"] = outputs[name].to_numpy()
        frame[f"{LOG_PREFIX}model_version"] = np.repeat([i[2] for i in items], sizes)
        frame[f"{LOG_PREFIX}latency_ms"] = np.repeat([i[3] for i in items], sizes)
        frame[f"{LOG_PREFIX}time"] = pd.DatetimeIndex(np.repeat([i[4] for i in items], sizes))
        if self.config.sample_rate < 1.0:
            frame = frame[self._rng.random(len(frame)) < self.config.sample_rate].reset_index(drop=True)
        return frame

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, close the open file, stop the writer."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    # ---- the writer thread ---------------------------------------------------------------------

    def _protect(self, frame: pd.DataFrame) -> pd.DataFrame:
        for column, action in (self.config.pii or {}).items():
            if column not in frame.columns:
                continue
            if action == "drop":
                frame = frame.drop(columns=column)
            else:
                frame[column] = [
                    None if pd.isna(v) else hashlib.blake2b(str(v).encode(), key=self._key, digest_size=16).hexdigest()
                    for v in frame[column]
                ]
        return frame

    def _run(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer: Any = None
        path: Path | None = None
        opened = 0.0
        buffer: list[Any] = []
        buffered = 0
        last_flush = time.monotonic()
        schema: Any = None

        def roll() -> None:
            nonlocal writer, path, schema
            if writer is None or path is None:
                return
            writer.close()
            final = path.with_name(path.name.removeprefix(".").removesuffix(".partial"))
            os.replace(path, final)
            self.files.append(self._publish(final))
            writer, path, schema = None, None, None

        def flush() -> None:
            nonlocal writer, path, opened, buffer, buffered, last_flush, schema
            last_flush = time.monotonic()
            if not buffer:
                return
            frame = self._protect(self._rows(buffer))
            rows = len(frame)
            buffer, buffered = [], 0
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is not None and not table.schema.equals(schema):
                roll()  # new columns or types: a new file, so each file has one schema
            if writer is None:
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                path = self._local / f".predictions-{stamp}-{uuid.uuid4().hex[:8]}.parquet.partial"
                writer = pq.ParquetWriter(path, table.schema)
                schema = table.schema
                opened = time.monotonic()
            writer.write_table(table)
            self.logged_rows += rows
            assert path is not None
            if path.stat().st_size >= self.config.roll_bytes or time.monotonic() - opened >= self.config.roll_seconds:
                roll()

        while True:
            try:
                item = self._queue.get(timeout=min(1.0, self.config.flush_seconds))
            except queue.Empty:
                item = ()
            try:
                if item is None:
                    flush()
                    roll()
                    return
                if item:
                    buffer.append(item)
                    buffered += len(item[0])
                if buffered >= self.config.flush_rows or time.monotonic() - last_flush >= self.config.flush_seconds:
                    flush()
                if writer is not None and time.monotonic() - opened >= self.config.roll_seconds:
                    roll()
            except Exception:  # noqa: BLE001 - keep logging what can be logged
                log.exception("prediction log: a batch could not be written")
                self.dropped_rows += buffered
                buffer, buffered = [], 0

    def _publish(self, path: Path) -> str:
        if self._remote is None:
            return str(path)
        from pyarrow import fs

        s3, key = fs.FileSystem.from_uri(f"{self._remote.rstrip('/')}/{path.name}")
        fs.copy_files(str(path), key, destination_filesystem=s3)
        path.unlink()
        return f"{self._remote.rstrip('/')}/{path.name}"


def _split_target(target: str) -> tuple[Path, str | None]:
    """A local folder to write in, and the s3:// prefix to upload closed files to (if any)."""
    if target.startswith("s3://"):
        import tempfile

        return Path(tempfile.mkdtemp(prefix="predlog-")), target
    if "://" in target and not target.startswith("file://"):
        raise SpecError("--log-predictions", "unsupported location", allowed=["a folder", "file://...", "s3://..."],
                        got=target, fix="give a local folder or an s3:// prefix")
    return Path(target.removeprefix("file://")), None
