"""Spark tables: a ``data.source`` read by the Spark session where it lives (layer 2).

The executors of the session read the rows themselves (a Parquet, CSV or JSON-lines path on the
site's filesystem, an ``s3a://`` path the cluster's Hadoop S3 connector reads, or a table name of the
session's catalog); nothing is collected to the driver. The fingerprint is taken from the table's
file listing (names, sizes and modification times of its input files, as Spark lists them), so two
runs over the same files share it and a changed file changes it, without reading a row here.
pyspark is imported only by the functions that take a session.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gravityml.errors import DataError

#: Suffixes Spark reads as files, by reader.
_READERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json"}


def spark_source(source: str, base_dir: Path | None = None) -> str:
    """The path or table name Spark reads for ``source``: a catalog dataset's URI, a path made absolute,
    ``s3://`` as ``s3a://`` (Hadoop's connector), a table name as it is."""
    from gravityml.data._catalog import find_catalog, load_catalog

    if "/" not in source and ":" not in source and find_catalog(base_dir) is not None:
        entry = load_catalog(base_dir=base_dir).dataset_for(source)
        if entry is not None:
            source = entry[1].uri
    if source.startswith("s3://"):
        return "s3a://" + source[len("s3://"):]
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


def spark_fingerprint(frame: Any, location: str) -> str:
    """sha256 of the table's input files (name, size, modification time where the file is local)."""
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
