"""Reading and writing tables: CSV, Parquet and JSON Lines, from paths, file:// and s3:// URIs.

Every read hashes the bytes it read (the dataset fingerprint in a run's lineage); every write goes
to a temporary file in the target folder and is renamed into place, so a failed run leaves no
half-written file.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from gravityml._files import atomic_write
from gravityml.errors import DataError

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
WRITABLE_FORMATS = (".csv", ".parquet", ".jsonl")


@dataclass(frozen=True)
class Table:
    """A frame with where it came from and the sha256 of the bytes it was read from."""

    frame: pd.DataFrame
    uri: str
    fingerprint: str
    format: str
    size_bytes: int


def format_of(name: str, *, role: str = "data.source") -> str:
    suffix = Path(urlparse(name).path if "://" in name else name).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(
            f"{role}: cannot tell the format of {name!r} from its extension",
            allowed=sorted(FORMATS),
            got=suffix or "(none)",
            fix="rename the file with one of the allowed extensions",
        )
    return FORMATS[suffix]


def resolve_path(source: str, base_dir: Path | None = None, *, role: str = "data.source") -> Path:
    """A local path for ``source`` (plain or file://), tried against ``base_dir`` then the cwd."""
    raw = unquote(urlparse(source).path) if source.startswith("file://") else source
    path = Path(raw).expanduser()
    candidates = [path] if path.is_absolute() else [p for p in ((base_dir or Path.cwd()) / path, Path.cwd() / path)]
    for candidate in candidates:
        if candidate.exists():
            if candidate.is_dir():
                return candidate
            return candidate
    tried = list(dict.fromkeys(str(c) for c in candidates))
    raise DataError(
        f"{role}: file {source!r} does not exist",
        got=tried,
        fix="check the path"
        + (" (relative paths are read from the spec's folder, then the current one)" if role == "data.source" else ""),
    )


def _parse(data: bytes, fmt: str, name: str) -> pd.DataFrame:
    if not data.strip():
        raise DataError(
            f"{name} is empty",
            got="0 bytes" if not data else "only whitespace",
            fix="give a file with a header row and at least one data row",
        )
    buffer = io.BytesIO(data)
    try:
        if fmt == "csv":
            return pd.read_csv(buffer)
        if fmt == "tsv":
            return pd.read_csv(buffer, sep="\t")
        if fmt == "parquet":
            return pd.read_parquet(buffer)
        if fmt == "jsonl":
            return pd.read_json(buffer, lines=True)
        return pd.read_json(buffer)
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{name} could not be read as {fmt}: {first}",
            fix=f"check that the file is valid {fmt}",
        ) from None


def _s3_bytes(uri: str) -> bytes:
    from pyarrow import fs

    parsed = urlparse(uri)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, Any] = {}
    if endpoint:
        endpoint_url = urlparse(endpoint)
        kwargs["endpoint_override"] = endpoint_url.netloc or endpoint
        kwargs["scheme"] = endpoint_url.scheme or "https"
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if region:
        kwargs["region"] = region
    s3 = fs.S3FileSystem(**kwargs)
    key = f"{parsed.netloc}{parsed.path}"
    try:
        with s3.open_input_stream(key) as stream:
            return bytes(stream.read())
    except OSError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(
            f"data.source: {uri!r} could not be read: {first}",
            got=uri,
            fix="check the bucket, key and credentials (AWS_* variables, AWS_ENDPOINT_URL)",
        ) from None


def read_table(source: str, base_dir: Path | None = None, *, role: str = "data.source") -> Table:
    """A :class:`Table` from a path, a file:// or an s3:// URI."""
    fmt = format_of(source, role=role)
    if source.startswith("s3://"):
        data = _s3_bytes(source)
        uri = source
    else:
        path = resolve_path(source, base_dir, role=role)
        if path.is_dir():
            raise DataError(f"{role}: {source!r} is a folder", got=str(path), fix="name a file")
        data = path.read_bytes()
        uri = path.resolve().as_uri()
    frame = _parse(data, fmt, repr(source))
    frame.columns = [str(c) for c in frame.columns]
    return Table(
        frame=frame,
        uri=uri,
        fingerprint="sha256:" + hashlib.sha256(data).hexdigest(),
        format=fmt,
        size_bytes=len(data),
    )


def check_writable(path: str | Path, *, role: str = "output") -> Path:
    """``path`` if its extension names a format we write, else a DataError (check before work)."""
    path = Path(path)
    if path.suffix.lower() not in WRITABLE_FORMATS:
        raise DataError(
            f"{role}: cannot write {path.name!r}",
            allowed=list(WRITABLE_FORMATS),
            got=path.suffix or "(no extension)",
            fix="name the output with one of the allowed extensions",
        )
    return path


def write_table(frame: pd.DataFrame, path: str | Path, *, role: str = "output") -> Path:
    """Write ``frame`` atomically as CSV, Parquet or JSON Lines, chosen by ``path``'s extension."""
    path = check_writable(path, role=role)
    fmt = FORMATS[path.suffix.lower()]

    def write(tmp: Path) -> None:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        elif fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_json(tmp, orient="records", lines=True)

    return atomic_write(path, write)
