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
        allowed="an existing file",
        got=tried,
        fix="check the path"
        + (" (relative paths are read from the spec's folder, then the current one)" if role == "data.source" else ""),
    )


def _parse(data: bytes, fmt: str, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The frame in ``data``. ``columns`` names the columns of a CSV/TSV without a header row."""
    if not data.strip():
        raise DataError(
            f"{name} is empty",
            allowed="a header row and at least one data row",
            got="0 bytes" if not data else "only whitespace",
            fix="give a file with a header row and at least one data row",
        )
    buffer = io.BytesIO(data)
    sep = "\t" if fmt == "tsv" else ","
    try:
        if fmt in ("csv", "tsv") and columns is not None:
            frame = pd.read_csv(buffer, sep=sep, header=None)
            if frame.shape[1] != len(columns):
                raise DataError(
                    f"{name}: data.columns names {len(columns)} columns but the rows hold {frame.shape[1]}",
                    allowed=f"{frame.shape[1]} names", got=columns,
                    fix="name every column of the file in data.columns, in the file's order",
                )
            frame.columns = list(columns)
            return frame
        if fmt in ("csv", "tsv"):
            _refuse_repeated_header(data, sep, name)
            return pd.read_csv(buffer, sep=sep)
        if fmt == "parquet":
            return pd.read_parquet(buffer)
        if fmt == "jsonl":
            return pd.read_json(buffer, lines=True)
        return pd.read_json(buffer)
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{name} could not be read as {fmt}: {first}",
            allowed=f"a valid {fmt} file",
            got=first,
            fix=f"check that the file is valid {fmt}",
        ) from None


def _refuse_repeated_header(data: bytes, sep: str, name: str) -> None:
    """pandas renames a second ``amount`` column to ``amount.1`` without a word: refuse the file instead."""
    import csv

    first_line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff")
    header = next(csv.reader([first_line], delimiter=sep), [])
    repeated = sorted({c for c in header if header.count(c) > 1 and c.strip()})
    if repeated:
        places = {c: [i + 1 for i, h in enumerate(header) if h == c] for c in repeated}
        raise DataError(
            f"{name}: the header row names {repeated[0]!r} more than once (columns "
            f"{', '.join(str(i) for i in places[repeated[0]])})",
            allowed="each column name once",
            got=repeated,
            fix="rename or remove the repeated columns in the header row",
        )


def _refuse_infinity(frame: pd.DataFrame, name: str) -> None:
    """``inf`` parses as a float, then breaks every estimator far from here: name its cell now."""
    import numpy as np

    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_float_dtype(values):
            continue
        bad = np.isinf(values.to_numpy(dtype="float64", na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{name}: column {column!r}, row {row + 1}: {values.iloc[row]} is not a finite number "
                f"({int(bad.sum())} such cell{'s' if bad.sum() > 1 else ''} in all)",
                allowed="finite numbers, or an empty cell for a missing value",
                got=str(values.iloc[row]),
                fix="replace the infinite values, or leave those cells empty",
            )


def s3_filesystem() -> Any:
    """pyarrow's S3 filesystem on the store the environment names (AWS_ENDPOINT_URL[_S3], the region, the keys)."""
    from pyarrow import fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, Any] = {}
    if endpoint:
        endpoint_url = urlparse(endpoint)
        kwargs["endpoint_override"] = endpoint_url.netloc or endpoint
        kwargs["scheme"] = endpoint_url.scheme or "https"
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if region:
        kwargs["region"] = region
    return fs.S3FileSystem(**kwargs)


def _s3_bytes(uri: str) -> bytes:
    parsed = urlparse(uri)
    s3 = s3_filesystem()
    key = f"{parsed.netloc}{parsed.path}"
    try:
        with s3.open_input_stream(key) as stream:
            return bytes(stream.read())
    except OSError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(
            f"data.source: {uri!r} could not be read: {first}",
            allowed="an object these credentials may read",
            got=uri,
            fix="check the bucket, key and credentials (AWS_* variables, AWS_ENDPOINT_URL)",
        ) from None


def read_table(
    source: str, base_dir: Path | None = None, *, role: str = "data.source", columns: list[str] | None = None
) -> Table:
    """A :class:`Table` from a path, a file:// or an s3:// URI (``columns``: a CSV without a header row).

    Repeated column names and infinite numbers are refused here, where the file is still named.
    """
    fmt = format_of(source, role=role)
    if source.startswith("s3://"):
        data = _s3_bytes(source)
        uri = source
    else:
        path = resolve_path(source, base_dir, role=role)
        if path.is_dir():
            raise DataError(f"{role}: {source!r} is a folder", allowed="a file", got=str(path), fix="name a file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(
                f"{role}: {source!r} cannot be read: {exc.strerror or exc}", allowed="a readable file",
                got=str(path), fix="check the file's permissions",
            ) from None
        uri = path.resolve().as_uri()
    frame = _parse(data, fmt, f"{role}: {source!r}", columns)
    frame.columns = [str(c) for c in frame.columns]
    repeated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if repeated:  # Parquet and JSON can carry a name twice too
        raise DataError(
            f"{role}: {source!r} names column {repeated[0]!r} more than once", allowed="each column name once",
            got=repeated, fix="rename or remove the repeated columns",
        )
    _refuse_infinity(frame, f"{role}: {source!r}")
    return Table(
        frame=frame,
        uri=uri,
        fingerprint="sha256:" + hashlib.sha256(data).hexdigest(),
        format=fmt,
        size_bytes=len(data),
    )


def whole_number_columns(frame: pd.DataFrame) -> list[str]:
    """Float columns that hold only whole numbers and at least one blank: integers in the file, which
    pandas reads as floats because NaN is a float. Written back as nullable ``Int64`` they stay ``3``, not ``3.0``."""
    import numpy as np

    found = []
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_float_dtype(values) or not values.isna().any():
            continue
        present = values.dropna().to_numpy(dtype="float64")
        if len(present) and bool(np.all(np.mod(present, 1) == 0)) and bool(np.all(np.abs(present) < 2**53)):
            found.append(str(column))
    return found


def check_writable(path: str | Path, *, role: str = "output") -> Path:
    """``path`` if its extension names a format we write and its folder can be written, else a DataError.

    Called before any work, so a run never ends with results it cannot store.
    """
    path = Path(path)
    if path.suffix.lower() not in WRITABLE_FORMATS:
        raise DataError(
            f"{role}: cannot write {path.name!r}",
            allowed=list(WRITABLE_FORMATS),
            got=path.suffix or "(no extension)",
            fix="name the output with one of the allowed extensions",
        )
    if path.is_dir():
        raise DataError(
            f"{role}: {str(path)!r} is a folder", allowed="a file name", got=str(path),
            fix="name a file inside it, e.g. " + str(path / f"scored{path.suffix or '.csv'}"),
        )
    check_folder_writable(path.parent, role=role)
    return path


def check_folder_writable(folder: str | Path, *, role: str = "output") -> Path:
    """``folder`` if it exists and can be written, or can be created; else a DataError naming why."""
    folder = Path(folder)
    existing = folder if str(folder) else Path(".")
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(
            f"{role}: folder {str(folder)!r} cannot be made: {str(existing)!r} is a file",
            allowed="a path inside a folder", got=str(existing), fix="choose another output path",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(
            f"{role}: folder {str(existing)!r} cannot be written",
            allowed="a folder this user may write", got=str(existing),
            fix="choose another output path, or change the folder's permissions",
        )
    return folder


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
