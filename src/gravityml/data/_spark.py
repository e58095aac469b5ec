"""Spark tables: a ``data.source`` read by the Spark session where it lives (layer 2).

The executors of the session read the rows themselves; nothing is collected to the driver:

- a Parquet, CSV or JSON-lines path on the site's filesystem, or an ``s3a://`` path (a cluster that
  has Hadoop's S3 connector), read by Spark's own readers;
- an ``s3://`` prefix (or object) of Parquet files, read without Hadoop's S3 connector (hadoop-aws is
  not in pyspark's wheel): the driver lists the objects and reads one footer (metadata only), then a
  DataFrame of the object keys is read by pyarrow's S3 filesystem on the executors (``mapInArrow``),
  with the site's store (endpoint, region, keys: ``storage:`` in the catalog) shipped in the task;
- a Delta table (a folder or ``s3://`` prefix with ``_delta_log/``): its snapshot's version and active
  files from delta-rs (``deltalake``) on the driver, the files read as above;
- a table name of the session's catalog.

The fingerprint is taken from the table's file listing (names, sizes and modification times of its
input files), so two runs over the same files share it and a changed file changes it, without
reading a row here. pyspark is imported only by the functions that take a session.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gravityml.data._catalog import SiteStorage
from gravityml.errors import DataError

#: Suffixes Spark reads as files, by reader.
_READERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json"}


def spark_source(source: str, base_dir: Path | None = None) -> str:
    """The path or table name Spark reads for ``source``: a catalog dataset's URI, a path made absolute,
    a URI (``s3://``, ``s3a://``) or a table name as it is."""
    from gravityml.data._catalog import find_catalog, load_catalog

    if "/" not in source and ":" not in source and find_catalog(base_dir) is not None:
        entry = load_catalog(base_dir=base_dir).dataset_for(source)
        if entry is not None:
            source = entry[1].uri
    if "://" in source:
        return source
    if "/" not in source and "." in source and Path(source).suffix.lower() not in _READERS:
        return source  # db.table
    path = Path(source).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    return str(path.resolve()) if (path.exists() or "/" in source or path.suffix) else source


def _reader(location: str) -> str | None:
    """'parquet', 'csv', 'json', or None for a table name; a folder without a suffix is Parquet."""
    parsed = urlparse(location)
    name = parsed.path if parsed.scheme else location
    suffix = Path(name.rstrip("/")).suffix.lower()
    if suffix in _READERS:
        return _READERS[suffix]
    if suffix == "" and "/" in name:
        return "parquet"  # a partitioned Parquet folder (what Spark itself writes)
    return None


def read_spark_table(session: Any, source: str, base_dir: Path | None = None, *, header: bool = True) -> tuple[Any, str]:
    """(Spark DataFrame, the location it was read from); a missing path is a one-line DataError."""
    location = spark_source(source, base_dir)
    _TABLES.pop(location, None)
    if is_delta(location):
        return read_delta(session, location, current_store()), location
    if location.startswith("s3://"):
        env = current_store()
        objects = list_s3_objects(location, env, suffixes=(".parquet",), recursive=True)
        frame = read_parquet_on_executors(session, [uri for uri, _, _ in objects], env)
        _TABLES[location] = {"data_fingerprint": _listing_fingerprint(location, objects)}
        return frame, location
    kind = _reader(location)
    try:
        if kind is None:
            return session.table(location), location
        if kind == "csv":
            sep = "\t" if location.lower().endswith(".tsv") else ","
            return session.read.csv(location, header=header, inferSchema=True, sep=sep), location
        return getattr(session.read, kind)(location), location
    except Exception as exc:  # AnalysisException (PATH_NOT_FOUND, TABLE_OR_VIEW_NOT_FOUND) from the JVM
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise DataError(
            f"data.source: Spark could not read {location!r}: {first}",
            allowed="a Parquet/CSV/JSON-lines path the site's cluster can read, or a table of its catalog",
            got=source,
            fix="check the path on the site (its executors read it, not this machine), or the table name",
        ) from None


def spark_table_tags(location: str) -> dict[str, str]:
    """Lineage of the table last read from ``location`` by this process beyond Spark's own file listing."""
    return {k: v for k, v in _TABLES.get(location, {}).items() if k != "data_fingerprint"}


def spark_fingerprint(frame: Any, location: str) -> str:
    """sha256 of the table's input files (name, size, modification time where the file is local)."""
    known = _TABLES.get(location, {}).get("data_fingerprint")
    if known is not None:  # listed here (an s3:// prefix): Spark's inputFiles() does not see the keys
        return known
    digest = hashlib.sha256(location.encode())
    for uri in sorted(frame.inputFiles()):
        digest.update(b"\0" + uri.encode())
        parsed = urlparse(uri)
        if parsed.scheme in ("", "file"):
            try:
                st = os.stat(unquote(parsed.path))
                digest.update(f":{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                pass
    return digest.hexdigest()


# ---- s3:// without Hadoop's connector: listed here, read by pyarrow on the executors -------------------------

#: What this process last read per location, beyond the frame: {"data_fingerprint": ..., other lineage}.
_TABLES: dict[str, dict[str, str]] = {}
_STORE: ContextVar[dict[str, str] | None] = ContextVar("gravityml_spark_store", default=None)
_AWS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
#: Rows per Arrow batch an executor reads from a Parquet file.
_BATCH_ROWS = 65536


def store_env(storage: SiteStorage | None) -> dict[str, str]:
    """The AWS_* values the executors read a site's store with: this process's, then the site's ``storage:``."""
    env = {k: v for k, v in os.environ.items() if k in _AWS}
    if storage is not None:
        env.update(storage.env())
    return env


@contextmanager
def site_store(storage: SiteStorage | None) -> Iterator[dict[str, str]]:
    """Within it, ``s3://`` tables are read from ``storage`` (a Spark site's job sets its site's store)."""
    token = _STORE.set(store_env(storage))
    try:
        yield _STORE.get() or {}
    finally:
        _STORE.reset(token)


def current_store() -> dict[str, str]:
    store = _STORE.get()
    return dict(store) if store is not None else store_env(None)


def s3_options(env: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments of pyarrow's S3FileSystem for ``env`` (plain values: they travel to executors)."""
    out: dict[str, Any] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        out["endpoint_override"] = parsed.netloc or endpoint
        out["scheme"] = parsed.scheme or "https"
    region = env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")
    if region:
        out["region"] = region
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        out["access_key"], out["secret_key"] = env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            out["session_token"] = env["AWS_SESSION_TOKEN"]
    return out


def store_filesystem(env: Mapping[str, str]) -> Any:
    """pyarrow's S3 filesystem on the store ``env`` names."""
    from pyarrow import fs

    return fs.S3FileSystem(**s3_options(env))


def s3_key(uri: str) -> str:
    parsed = urlparse(uri)
    return f"{parsed.netloc}{parsed.path}".rstrip("/")


def list_s3_objects(uri: str, env: Mapping[str, str], *, suffixes: tuple[str, ...],
                    recursive: bool) -> list[tuple[str, int, int]]:
    """(s3://bucket/key, size, mtime in ns) of ``uri`` itself or the objects under its prefix with ``suffixes``.

    Names starting with ``_`` or ``.`` (``_SUCCESS``, ``_delta_log/``) are skipped, in folders too; a
    Hive-partitioned prefix (``key=value/`` folders) is refused: its partition columns are not read.
    """
    from pyarrow import fs as pafs

    s3, path = store_filesystem(env), s3_key(uri)
    try:
        info = s3.get_file_info(path)
        if info.type == pafs.FileType.File:
            found = [info]
        else:
            found = []
            for entry in s3.get_file_info(pafs.FileSelector(path, recursive=recursive, allow_not_found=True)):
                parts = entry.path[len(path):].strip("/").split("/")
                if entry.type != pafs.FileType.File or any(p.startswith(("_", ".")) for p in parts):
                    continue
                if any("=" in p for p in parts[:-1]):
                    raise DataError(f"{uri!r} is partitioned into key=value folders ({'/'.join(parts[:-1])})",
                                    allowed="a prefix of Parquet files without partition folders, or a Delta table",
                                    got=entry.path, fix="name one partition's prefix, or write the table as Delta")
                if entry.base_name.lower().endswith(suffixes):
                    found.append(entry)
    except OSError as exc:
        raise DataError(f"{uri!r} cannot be listed: {(str(exc).strip().splitlines() or ['?'])[0][:200]}",
                        allowed="an s3:// prefix the site's store keys may read", got=uri,
                        fix="check the bucket and prefix, and the site's storage: (endpoint_url, key variables)"
                        ) from None
    if not found:
        raise DataError(f"{uri!r} holds no {'/'.join(suffixes)} objects", allowed=[f"*{s}" for s in suffixes],
                        got=uri, fix="name a prefix of Parquet files (s3:// CSV and JSON are read by Spark's "
                                     "readers only where the cluster has Hadoop's S3 connector: write s3a://)")
    return sorted((f"s3://{e.path}", int(e.size or 0), int(e.mtime_ns or 0)) for e in found)


def _listing_fingerprint(location: str, objects: list[tuple[str, int, int]]) -> str:
    digest = hashlib.sha256(location.encode())
    for uri, size, mtime in objects:
        digest.update(f"\0{uri}:{size}:{mtime}".encode())
    return digest.hexdigest()


def read_parquet_on_executors(session: Any, files: list[str], env: Mapping[str, str], *,
                              file_column: str | None = None) -> Any:
    """The ``s3://`` Parquet ``files`` as one Spark DataFrame whose rows the executors read (pyarrow).

    The schema is the first file's footer (read here, metadata only); every file is cast to it on
    the executor that reads it (a file without one of its columns fails that task, naming the file).
    ``file_column`` adds each row's file, as Spark's ``input_file_name()`` would.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import from_arrow_schema

    try:
        with store_filesystem(env).open_input_file(s3_key(files[0])) as handle:
            schema = pq.ParquetFile(handle).schema_arrow
    except OSError as exc:
        raise DataError(f"{files[0]!r} cannot be read: {(str(exc).strip().splitlines() or ['?'])[0][:200]}",
                        allowed="a Parquet object the site's store keys may read", got=files[0],
                        fix="check the object and the site's storage: keys") from None
    columns = list(schema.names)
    out_schema = schema.append(pa.field(file_column, pa.string())) if file_column else schema
    try:
        spark_schema = from_arrow_schema(out_schema)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{files[0]!r}: a column type Spark cannot take from Arrow: {exc}",
                        allowed="Parquet columns of Spark's types", got=str(schema), fix="cast the column when writing"
                        ) from None
    keys = session.createDataFrame([(f,) for f in files], "path string")
    parallelism = int(session.conf.get("spark.default.parallelism", "0") or 0) or 2 * len(files)
    keys = keys.repartition(max(1, min(len(files), parallelism)))
    options, wanted = s3_options(env), schema.serialize().to_pybytes()

    def read(batches: Iterator[Any]) -> Iterator[Any]:  # runs on an executor: pyarrow only, no gravityml
        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyarrow import fs as pafs

        s3 = pafs.S3FileSystem(**options)
        target = pa.ipc.read_schema(pa.py_buffer(wanted))
        for batch in batches:
            for uri in batch.column(0).to_pylist():
                key = uri[len("s3://"):]
                with s3.open_input_file(key) as handle:
                    parquet = pq.ParquetFile(handle)
                    missing = [c for c in columns if c not in parquet.schema_arrow.names]
                    if missing:
                        raise ValueError(f"input {uri!r}: columns {missing} of {files[0]!r} are not in it")
                    for chunk in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
                        table = pa.Table.from_batches([chunk]).cast(target)
                        if file_column:
                            table = table.append_column(file_column, pa.array([uri] * table.num_rows, pa.string()))
                        yield from table.to_batches()

    return keys.mapInArrow(read, spark_schema)


# ---- Delta tables: the snapshot from delta-rs (deltalake), the files read as Parquet ------------------------

#: Reader features of the Delta protocol whose tables are read correctly from their active Parquet files alone.
_DELTA_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})


def is_delta(location: str) -> bool:
    """Whether ``location`` is a Delta table (a folder or ``s3://`` prefix with a ``_delta_log/``)."""
    if location.startswith("s3://"):
        from pyarrow import fs as pafs

        try:
            info = store_filesystem(current_store()).get_file_info(f"{s3_key(location)}/_delta_log")
        except OSError:
            return False
        return bool(info.type == pafs.FileType.Directory)
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return False
    return (Path(unquote(parsed.path) if parsed.scheme else location) / "_delta_log").is_dir()


def _delta_storage_options(env: Mapping[str, str]) -> dict[str, str]:
    out = {k: v for k, v in env.items() if k in _AWS}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint and endpoint.startswith("http://"):
        out["AWS_ALLOW_HTTP"] = "true"
    return out


def _refuse_delta(location: str, what: str, got: Any, fix: str) -> DataError:
    return DataError(f"data.source: the Delta table {location!r} {what}",
                     allowed="a Delta table without deletion vectors, column mapping or partition columns "
                             f"(reader features {sorted(_DELTA_READER_FEATURES)})", got=got, fix=fix)


def read_delta(session: Any, location: str, env: Mapping[str, str]) -> Any:
    """The Delta table's current snapshot as a Spark DataFrame: its active Parquet files, read by the executors.

    delta-rs (``deltalake``) reads the log here (metadata only): the version and the files of the snapshot,
    which Spark reads (a local path) or pyarrow on the executors (``s3://``). A table whose rows are not
    just its files' rows (deletion vectors), whose column names are not its files' (column mapping) or
    whose partition values live in the log is refused before any job.
    """
    try:
        from deltalake import DeltaTable
    except ImportError:
        raise DataError(f"data.source: {location!r} is a Delta table, and deltalake is not installed",
                        allowed="deltalake (the spark extra)", got=location,
                        fix="pip install 'gravityml[spark]'") from None
    try:
        table = DeltaTable(location, storage_options=_delta_storage_options(env) if location.startswith("s3://") else None)
    except Exception as exc:  # deltalake's TableNotFoundError, DeltaError, OSError
        raise DataError(f"data.source: the Delta table {location!r} cannot be opened: "
                        f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]}",
                        allowed="a Delta table the site can read", got=location,
                        fix="check the path and the site's storage: keys") from None
    protocol, metadata = table.protocol(), table.metadata()
    features = set(protocol.reader_features or ())
    if "deletionVectors" in features:
        raise _refuse_delta(location, "enables deletion vectors (its files may hold rows it deleted)", sorted(features),
                            "rewrite it without them (delta.enableDeletionVectors=false, then OPTIMIZE / REORG "
                            "TABLE ... APPLY (PURGE)), or read it where Delta Lake's own reader is installed")
    mode = (metadata.configuration or {}).get("delta.columnMapping.mode", "none")
    if "columnMapping" in features or mode != "none":
        raise _refuse_delta(location, f"maps its column names (delta.columnMapping.mode={mode})", mode,
                            "write the table without column mapping")
    unknown = features - _DELTA_READER_FEATURES
    if unknown or protocol.min_reader_version > 3:
        raise _refuse_delta(location, f"needs reader features gravityml does not read ({sorted(unknown)}, "
                            f"reader version {protocol.min_reader_version})", sorted(features),
                            "write the table with a plainer protocol, or read it where Delta Lake is installed")
    if metadata.partition_columns:
        raise _refuse_delta(location, f"is partitioned by {list(metadata.partition_columns)} (their values are "
                            "in the log, not the files)", list(metadata.partition_columns),
                            "write it unpartitioned, or train on one partition's folder")
    version, files = table.version(), sorted(table.file_uris())
    if not files:
        raise _refuse_delta(location, f"has no rows at version {version}", version, "name a table with data")
    digest = hashlib.sha256(f"{location}@{version}".encode())
    for uri in files:
        digest.update(b"\0" + uri.encode())
    _TABLES[location] = {"data_fingerprint": digest.hexdigest(), "delta_version": str(version),
                         "data_files": str(len(files))}
    if location.startswith("s3://"):
        return read_parquet_on_executors(session, files, env)
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = from_arrow_schema(pa.schema(table.schema().to_arrow()))
    return session.read.schema(schema).parquet(*files)
