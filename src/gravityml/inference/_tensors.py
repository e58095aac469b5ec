"""Open Inference Protocol v2 tensors to and from the predictor contract.

A model takes either one tensor per training column (name = column, shape ``[n]`` or ``[n, 1]``)
or a single tensor ``input`` of shape ``[n, n_features]`` in the schema's column order. Outputs are
named after the columns of ``predict`` (``prediction``, ``confidence``, ``score``, ...), plus
``probabilities`` (``[n, n_classes]``) for classifiers when asked for. Every check here raises
:class:`~gravityml.errors.InferenceError`, which the server answers with 400 and an OIP error body.
Spec: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gravityml.errors import InferenceError
from gravityml.schema import Column, Schema

MATRIX_INPUT = "input"
PROBABILITIES = "probabilities"
INT_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})
DATATYPES = INT_TYPES | FLOAT_TYPES | {"BOOL", "BYTES"}
#: The values each integer datatype holds.
INT_RANGES: dict[str, tuple[int, int]] = {
    **{f"INT{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **{f"UINT{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)},
}
#: The largest finite magnitude of each float datatype.
FLOAT_MAX: dict[str, float] = {
    "FP16": float(np.finfo(np.float16).max), "FP32": float(np.finfo(np.float32).max), "FP64": float(np.finfo(np.float64).max),
}
#: Which tensor datatypes a column of each schema kind accepts; the first is the one advertised.
ACCEPTS: dict[str, tuple[str, ...]] = {
    "numeric": ("FP64", *sorted(FLOAT_TYPES - {"FP64"}), *sorted(INT_TYPES)),
    "boolean": ("BOOL", *sorted(INT_TYPES)),
    "categorical": ("BYTES",),
    "text": ("BYTES",),
}


@dataclass(frozen=True)
class Decoded:
    """One request's rows as columns, and what it asked to get back."""

    columns: dict[str, np.ndarray]
    rows: int
    outputs: list[str] | None = None
    probabilities: bool = False
    request_id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns)


def _bad(what: str, **kwargs: Any) -> InferenceError:
    return InferenceError(what, **kwargs)


def matrix_datatype(schema: Schema) -> str:
    return "FP64" if all(c.kind in ("numeric", "boolean") for c in schema.features) else "BYTES"


def input_metadata(schema: Schema) -> list[dict[str, Any]]:
    """The OIP ``inputs`` of a model's metadata: one tensor per column."""
    return [{"name": c.name, "datatype": ACCEPTS[c.kind][0], "shape": [-1]} for c in schema.features]


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise _bad(f"input {name!r}: 'data' must be a list of values", allowed="a JSON list", got=type(data).__name__,
                   fix="send the tensor's values row-major as a JSON list")
    if not any(isinstance(v, list) for v in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _column_values(values: list[Any], datatype: str, col: Column, tensor: str, float_max: float = math.inf) -> np.ndarray:
    """``values`` checked against ``datatype`` and the column, as the array the schema expects."""
    if datatype not in ACCEPTS[col.kind]:
        raise _bad(
            f"input {tensor!r}: datatype {datatype} does not fit {col.kind} column {col.name!r}",
            allowed=list(ACCEPTS[col.kind]),
            got=datatype,
            fix=f"send column {col.name!r} as {ACCEPTS[col.kind][0]}",
        )
    if datatype == "BYTES":
        ok = all(isinstance(v, str) or (v is None and col.nullable) for v in values)
        if not ok:
            bad = next(v for v in values if not isinstance(v, str))
            raise _bad(
                f"input {tensor!r}: column {col.name!r} takes strings"
                + ("" if col.nullable else " and had no missing values in training"),
                allowed="JSON strings" + ("" if col.nullable else " (no nulls)"), got=repr(bad)[:80],
                fix="send text values (JSON strings)",
            )
        return np.asarray(values, dtype=object)
    if col.kind == "boolean":
        # The schema reads booleans by their text ("true"/"false"), so hand it Python bools.
        if not all(isinstance(v, bool) or (isinstance(v, int) and v in (0, 1)) for v in values):
            bad = next(v for v in values if not (isinstance(v, bool) or (isinstance(v, int) and v in (0, 1))))
            raise _bad(f"input {tensor!r}: column {col.name!r} takes true/false (or 0/1)",
                       allowed="true, false, 0, 1", got=repr(bad)[:80], fix="send JSON booleans")
        return np.asarray([bool(v) for v in values], dtype=object)
    if datatype in INT_TYPES:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise _bad(f"input {tensor!r}: {datatype} values must be integers",
                       allowed="JSON integers", got=repr(next(v for v in values if not isinstance(v, int) or isinstance(v, bool)))[:80],
                       fix="send integers, or declare the tensor FP64")
        low, high = INT_RANGES[datatype]
        for i, v in enumerate(values):
            if not low <= v <= high:
                raise _bad(f"input {tensor!r}: row {i + 1} of column {col.name!r} does not fit {datatype}",
                           allowed=f"{low} to {high}", got=str(v)[:40],
                           fix="send values within the datatype's range, or declare a wider datatype")
        return np.asarray(values, dtype=np.float64)
    out = _plain_floats(values)
    for i, v in enumerate(values if out is None else ()):
        if out is None:
            out = np.empty(len(values), dtype=np.float64)
        if v is None:
            out[i] = math.nan
        elif _is_number(v):
            out[i] = float(v) if not isinstance(v, int) or abs(v) < 2**1000 else math.inf
        else:
            raise _bad(f"input {tensor!r}: {datatype} values must be numbers", allowed="JSON numbers or null", got=repr(v)[:80],
                       fix="send JSON numbers (null or NaN for a missing value where the model allows it)")
    if out is None:  # no values
        out = np.empty(0, dtype=np.float64)
    # The smaller of the declared datatype's range and the model's own precision (an fp32 graph
    # turns 3.5e38 into infinity and answers NaN).
    limit = min(FLOAT_MAX.get(datatype, FLOAT_MAX["FP64"]), float_max)
    with np.errstate(invalid="ignore"):
        outside = np.abs(out) > limit
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        value = out[row]
        what = "is infinite" if math.isinf(value) else f"is out of the range the model computes in (|x| <= {limit:.6g})"
        raise _bad(f"input {tensor!r}: column {col.name!r}, row {row + 1} {what}", allowed="finite numbers",
                   got=repr(values[row])[:40], fix="send finite numbers within the model's range")
    if not np.isfinite(out).all():
        missing = np.isnan(out)
        if missing.any() and not col.nullable:
            row = int(np.flatnonzero(missing)[0]) + 1
            raise _bad(
                f"input {tensor!r}: column {col.name!r}, row {row} is NaN/null, but the model never saw a "
                "missing value there",
                allowed="numbers",
                got="NaN",
                fix=f"send a number for {col.name!r}",
            )
    return out


_FLOAT_OR_INT = frozenset({float, int})


def _plain_floats(values: list[Any]) -> np.ndarray | None:
    """``values`` as float64 in one numpy call when every one is a JSON number (None otherwise, or
    for an int too large for a float: the caller's loop then looks at each value)."""
    if not values or not set(map(type, values)) <= _FLOAT_OR_INT:
        return None
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:
        return None


def _numeric_matrix(values: list[Any], rows: int, datatype: str, schema: Schema,
                    float_max: float) -> dict[str, np.ndarray] | None:
    """A matrix tensor of plain finite numbers within range for an all-numeric schema, split into
    columns with a few numpy calls; None where ``_column_values`` must look column by column
    (it then names the column and row of what is wrong)."""
    if datatype not in FLOAT_TYPES and datatype not in INT_TYPES:
        return None
    if not all(c.kind == "numeric" for c in schema.features):
        return None
    if datatype in INT_TYPES:
        if not values or not set(map(type, values)) <= {int}:
            return None
        low, high = INT_RANGES[datatype]
        if not (low <= min(values) and max(values) <= high):
            return None
        matrix = np.array(values, dtype=np.float64)
    else:
        floats = _plain_floats(values)
        if floats is None:
            return None
        matrix = floats
        limit = min(FLOAT_MAX.get(datatype, FLOAT_MAX["FP64"]), float_max)
        with np.errstate(invalid="ignore"):
            if not (np.abs(matrix) <= limit).all():  # also false for NaN: the column check says which
                return None
    by_column = np.ascontiguousarray(matrix.reshape(rows, len(schema.features)).T)
    return {c.name: by_column[j] for j, c in enumerate(schema.features)}


def _shape(tensor: dict[str, Any], name: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _bad(f"input {name!r}: 'shape' must be a non-empty list of non-negative integers", allowed="a list such as [3] or [3, 4]", got=repr(shape)[:80],
                   fix="e.g. \"shape\": [3] for 3 rows of one column")
    return shape


def _too_many_rows(rows: int, max_rows: int) -> InferenceError:
    return _bad("the request has too many rows", allowed=f"<= {max_rows}", got=rows, fix="split it into smaller requests")


_SHAPE_KEY = b'"shape"'
_SHAPE_VALUE = re.compile(rb"\s*:\s*\[([0-9,\s]{0,200})\]")
#: Most bytes one number takes in a JSON tensor ("-1.2345678901234567e-308, " and indentation).
_BYTES_PER_NUMBER = 64


def check_declared(raw: bytes, *, max_rows: int, n_features: int) -> None:
    """Refuse a request whose declared shapes are over the limits, before its JSON is decoded.

    A scan for the ``"shape"`` keys (a JSON string cannot hold an unescaped quote, so the key only
    matches where it is a key) costs milliseconds on a 16 MB body; decoding it takes seconds. A body
    of numbers far larger than its shapes declare is refused too (shapes that lie to pass the scan).
    """
    declared, at = 0, raw.find(_SHAPE_KEY)
    while at >= 0:
        match = _SHAPE_VALUE.match(raw, at + len(_SHAPE_KEY))
        if match is not None:
            dims = [int(d) for d in match.group(1).replace(b",", b" ").split() if len(d) <= 12]
            if dims and dims[0] > max_rows:
                raise _too_many_rows(dims[0], max_rows)
            declared += math.prod(dims) if dims else 0
            if declared > max_rows * max(1, n_features):
                raise _bad("the request declares more values than the row limit allows",
                           allowed=f"<= {max_rows} rows of {n_features} features", got=declared,
                           fix="split it into smaller requests")
        at = raw.find(_SHAPE_KEY, at + len(_SHAPE_KEY))
    if b'"BYTES"' not in raw and len(raw) > 65_536 + _BYTES_PER_NUMBER * declared:
        raise _bad("the request body is far larger than its tensors' shapes declare", got=f"{len(raw)} bytes",
                   allowed=f"about {_BYTES_PER_NUMBER} bytes per declared value", fix="make 'shape' match the data")


def decode_request(
    body: Any, schema: Schema, *, max_rows: int = 100_000, binary: bytes = b"", float_max: float = math.inf
) -> Decoded:
    """An OIP inference request for a model with ``schema`` as columns in the schema's order.

    ``binary`` is what follows the JSON header under the binary tensor extension: the values of
    inputs whose ``parameters.binary_data_size`` is set, in input order. ``float_max`` is the
    largest magnitude the model computes with (float32's for an fp32 graph): larger values are
    refused rather than scored as infinity.
    """
    offset = 0
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", allowed="a JSON object", got=type(body).__name__,
                   fix='send {"inputs": [{"name": ..., "shape": [...], "datatype": ..., "data": [...]}]}')
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad("the request needs a non-empty 'inputs' list", allowed="a list of input tensors", got=repr(inputs)[:80],
                   fix="add one input tensor per feature column, or one 2-D tensor named 'input'")
    names = schema.feature_names
    by_name = {c.name: c for c in schema.features}
    columns: dict[str, np.ndarray] = {}
    rows: int | None = None
    seen: set[str] = set()
    for tensor in inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise _bad("each input must be an object with a string 'name'", allowed="objects with a string name", got=repr(tensor)[:80],
                       fix="give every input tensor a name")
        name = tensor["name"]
        if name in seen or (name == MATRIX_INPUT and name not in by_name and columns):
            raise _bad(f"input {name!r} is given twice" if name in seen else
                       f"input {name!r} holds every column, but column tensors were sent too", allowed="each tensor name once", got=name[:80],
                       fix="send each column once: one tensor per column, or all of them as one tensor 'input'")
        seen.add(name)
        datatype = tensor.get("datatype")
        if not isinstance(datatype, str) or datatype not in DATATYPES:
            raise _bad(f"input {name!r}: unknown datatype", allowed=sorted(DATATYPES), got=repr(datatype)[:40],
                       fix="use one of the OIP datatypes")
        shape = _shape(tensor, name)
        if shape[0] > max_rows:
            raise _too_many_rows(shape[0], max_rows)
        params = tensor.get("parameters")
        if isinstance(params, dict) and "binary_data_size" in params:
            size = params["binary_data_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise _bad(f"input {name!r}: binary_data_size does not fit the binary part of the body",
                           allowed="sizes within the binary part", got=repr(size)[:40], fix="send Inference-Header-Content-Length and sizes that add up")
            values = binary_values(binary[offset : offset + size], datatype, name)
            offset += size
        else:
            values = _flatten(tensor.get("data"), name)
        if math.prod(shape) != len(values):
            raise _bad(f"input {name!r}: shape {shape} holds {math.prod(shape)} values but 'data' has {len(values)}",
                       allowed="as many values as the shape holds", got=len(values), fix="make 'shape' match the number of values")
        if name == MATRIX_INPUT and name not in by_name:
            if len(shape) != 2 or shape[1] != len(names):
                raise _bad(f"input {name!r}: shape must be [n, {len(names)}] (one column per feature)",
                           allowed=[-1, len(names)], got=shape, fix=f"send rows of {len(names)} values in the order {names[:5]}")
            n = shape[0]
            fast = _numeric_matrix(values, n, datatype, schema, float_max) if n else None
            if fast is not None:
                columns.update(fast)
            for j, col in enumerate(schema.features if fast is None else ()):
                column_type = datatype if datatype != "BYTES" or col.kind in ("categorical", "text") else "FP64"
                picked = values[j :: len(names)]
                if datatype == "BYTES" and col.kind in ("numeric", "boolean"):
                    picked = [_number_from_text(v, name, col) for v in picked]
                    column_type = "FP64" if col.kind == "numeric" else "BOOL"
                columns[col.name] = _column_values(picked, column_type, col, name, float_max)
        elif name in by_name:
            if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
                raise _bad(f"input {name!r}: a column tensor has shape [n] or [n, 1]", allowed="[n] or [n, 1]", got=shape,
                           fix="send one tensor per column, or all columns as one [n, n_features] tensor 'input'")
            if name in columns:
                raise _bad(f"input {name!r} is given twice (once inside 'input')", allowed="each column once", got=name, fix="send each column once")
            n = shape[0]
            columns[name] = _column_values(values, datatype, by_name[name], name, float_max)
        else:
            raise _bad(f"unknown input tensor {name!r}", allowed=[*names[:20], MATRIX_INPUT][:21], got=name,
                       fix="name input tensors after the model's columns (see GET /v2/models/NAME)")
        if rows is not None and n != rows:
            raise _bad(f"input {name!r} has {n} rows but an earlier input has {rows}", allowed="the same row count in every input", got=n,
                       fix="send the same number of rows in every input")
        rows = n
    missing = [c for c in names if c not in columns]
    if missing:
        raise _bad(f"the request lacks input{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing[:10]))}",
                   allowed=names, got=sorted(columns), fix="send one tensor per feature column")
    assert rows is not None
    if rows == 0:
        raise _bad("the request has no rows", allowed="1 or more rows", got=0, fix="send at least one row")
    if rows > max_rows:
        raise _too_many_rows(rows, max_rows)
    outputs, probabilities = _requested(body)
    request_id = body.get("id")
    parameters = body.get("parameters")
    return Decoded(
        columns={c: columns[c] for c in names},
        rows=rows,
        outputs=outputs,
        probabilities=probabilities,
        request_id=request_id if isinstance(request_id, str) else None,
        parameters=parameters if isinstance(parameters, dict) else {},
    )


_BINARY = {"BOOL": "?", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "<u1",
           "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}


def binary_values(raw: bytes, datatype: str, name: str) -> list[Any]:
    """Values of one tensor under the binary extension: little-endian, BYTES as 4-byte length + bytes.

    https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md
    """
    if datatype != "BYTES":
        width = np.dtype(_BINARY[datatype]).itemsize
        if len(raw) % width:
            raise _bad(f"input {name!r}: {len(raw)} bytes is not a whole number of {datatype} values", allowed="a multiple of the datatype size", got=len(raw),
                       fix="send binary_data_size = number of values x size of the datatype")
        return np.frombuffer(raw, dtype=_BINARY[datatype]).tolist()
    values, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise _bad(f"input {name!r}: a BYTES element is cut short", allowed="4-byte length, then the bytes", got=len(raw), fix="prefix each element with its 4-byte length")
        length = int.from_bytes(raw[at : at + 4], "little")
        element = raw[at + 4 : at + 4 + length]
        if len(element) != length:
            raise _bad(f"input {name!r}: a BYTES element is cut short", allowed="4-byte length, then the bytes", got=len(raw), fix="prefix each element with its 4-byte length")
        try:
            values.append(element.decode("utf-8"))
        except UnicodeDecodeError:
            raise _bad(f"input {name!r}: a BYTES element is not UTF-8 text", allowed="UTF-8 text",
                       got="invalid UTF-8", fix="send UTF-8 strings") from None
        at += 4 + length
    return values


def binary_outputs(tensors: list[dict[str, Any]], wanted: set[str] | bool) -> tuple[list[dict[str, Any]], bytes]:
    """Move the ``data`` of the outputs in ``wanted`` (or all, for True) into one binary blob."""
    blobs: list[bytes] = []
    out = []
    for tensor in tensors:
        if wanted is True or (wanted and tensor["name"] in wanted):
            data = tensor["data"]
            if tensor["datatype"] == "BYTES":
                raw = b"".join(len(e).to_bytes(4, "little") + e for e in (str(v).encode() for v in data))
            else:
                values = [math.nan if v is None else v for v in data]
                raw = np.asarray(values, dtype=_BINARY[tensor["datatype"]]).tobytes()
            blobs.append(raw)
            tensor = {k: v for k, v in tensor.items() if k != "data"}
            tensor["parameters"] = {**tensor.get("parameters", {}), "binary_data_size": len(raw)}
        out.append(tensor)
    return out, b"".join(blobs)


def binary_wanted(body: dict[str, Any]) -> set[str] | bool:
    """Which outputs the client asked to get as binary (True: all of them)."""
    params = body.get("parameters")
    if isinstance(params, dict) and params.get("binary_data_output") is True:
        return True
    outputs = body.get("outputs")
    if not isinstance(outputs, list):
        return False
    return {o["name"] for o in outputs if isinstance(o, dict) and isinstance(o.get("parameters"), dict)
            and o["parameters"].get("binary_data") is True and isinstance(o.get("name"), str)}


def _number_from_text(value: Any, tensor: str, col: Column) -> Any:
    """A value of a BYTES matrix bound for a numeric column: numbers pass, numeric strings convert."""
    if value is None or _is_number(value) or isinstance(value, bool):
        return value if col.kind == "numeric" or value is None else bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if col.kind == "boolean" and text in ("true", "false", "1", "0"):
            return text in ("true", "1")
        try:
            return float(text) if col.kind == "numeric" else None
        except ValueError:
            pass
    raise _bad(f"input {tensor!r}: column {col.name!r} takes numbers", allowed="numbers or numeric text", got=repr(value)[:80], fix="send a number")


def _requested(body: dict[str, Any]) -> tuple[list[str] | None, bool]:
    params = body.get("parameters")
    probabilities = isinstance(params, dict) and params.get(PROBABILITIES) is True
    outputs = body.get("outputs")
    if outputs is None:
        return None, probabilities
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise _bad("'outputs' must be a list of objects with a string 'name'", allowed="a list of {\"name\": ...} objects", got=repr(outputs)[:80],
                   fix='e.g. "outputs": [{"name": "prediction"}, {"name": "confidence"}]')
    names = [o["name"] for o in outputs]
    return names, probabilities or PROBABILITIES in names


def _datatype(values: np.ndarray) -> str:
    if values.dtype.kind == "b":
        return "BOOL"
    if values.dtype.kind in "iu":
        return "INT64"
    if values.dtype.kind == "f":
        return "FP64"
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return "BOOL"
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
        return "INT64"
    if all(isinstance(v, (float, np.floating)) for v in values):
        return "FP64"
    return "BYTES"


def _plain_list(values: np.ndarray, datatype: str) -> list[Any]:
    if datatype == "FP64":
        # JSON has no NaN: a missing float goes out as null.
        return [None if math.isnan(v) else v for v in values.astype(np.float64).tolist()]
    if datatype == "INT64":
        return [int(v) for v in values]
    if datatype == "BOOL":
        return [bool(v) for v in values]
    return [str(v) for v in values]


def output_tensors(predicted: pd.DataFrame, proba: pd.DataFrame | None) -> list[dict[str, Any]]:
    """OIP ``outputs`` for ``predict``'s frame (and the class probabilities when given)."""
    out: list[dict[str, Any]] = []
    n = len(predicted)
    for name in predicted.columns:
        values = predicted[name].to_numpy()
        datatype = _datatype(values)
        out.append({"name": str(name), "datatype": datatype, "shape": [n], "data": _plain_list(values, datatype)})
    if proba is not None:
        matrix = proba.to_numpy(dtype=np.float64)
        out.append({
            "name": PROBABILITIES,
            "datatype": "FP64",
            "shape": [n, matrix.shape[1]],
            "data": matrix.ravel().tolist(),
            "parameters": {"classes": [str(c) for c in proba.columns]},
        })
    return out


def select_outputs(tensors: list[dict[str, Any]], wanted: list[str] | None) -> list[dict[str, Any]]:
    """Only the requested outputs (all when none are named); an unknown name is an error."""
    if wanted is None:
        return tensors
    known = {t["name"]: t for t in tensors}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise _bad(f"unknown output {unknown[0]!r}", allowed=sorted(known), got=unknown[0],
                   fix="request outputs the model's metadata lists")
    return [known[w] for w in wanted]


def check_finite(predicted: pd.DataFrame, proba: pd.DataFrame | None) -> None:
    """Refuse to answer with a NaN or infinity the model computed (JSON has neither, and the label
    beside a NaN probability is arbitrary): the 400 names the output and the row."""
    frames = [predicted] + ([proba] if proba is not None else [])
    for frame in frames:
        for column, dtype in zip(frame.columns, frame.dtypes):
            if (isinstance(dtype, np.dtype) and dtype.kind == "O") or isinstance(dtype, pd.StringDtype):  # labels: no look
                continue
            values = frame[column].to_numpy()
            if values.dtype.kind != "f":
                continue
            bad = ~np.isfinite(values)
            if bad.any():
                row = int(np.flatnonzero(bad)[0]) + 1
                output = PROBABILITIES if frame is proba else str(column)
                raise _bad(f"the model computed no finite {output!r} for row {row}: its inputs are outside the range "
                           "the model can score", allowed="finite outputs", got=repr(float(values[row - 1])),
                           fix=f"check row {row}'s values against the training data's range")


#: The body keys of MLflow's scoring protocol (``mlflow models serve``'s ``/invocations``).
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode_mlflow(body: Any, schema: Schema, *, max_rows: int = 100_000, float_max: float = math.inf) -> pd.DataFrame:
    """Rows of an MLflow scoring request (``dataframe_split``, ``dataframe_records``, ``instances``
    or ``inputs``) as a frame; the model's schema checks the columns and values themselves.

    https://mlflow.org/docs/latest/deployment/deploy-model-locally.html (local REST server)
    """
    if not isinstance(body, dict) or sum(k in body for k in MLFLOW_KEYS) != 1:
        raise _bad("an MLflow scoring request has exactly one of " + ", ".join(MLFLOW_KEYS), allowed=list(MLFLOW_KEYS),
                   got=sorted(body)[:5] if isinstance(body, dict) else type(body).__name__,
                   fix='send e.g. {"dataframe_split": {"columns": [...], "data": [[...]]}}')
    key = next(k for k in MLFLOW_KEYS if k in body)
    value = body[key]
    names = schema.feature_names
    try:
        if key == "dataframe_split":
            if not isinstance(value, dict) or not isinstance(value.get("data"), list):
                raise _bad("dataframe_split needs 'columns' and a 'data' list of rows", allowed="columns, data, index",
                           got=repr(value)[:80], fix='send {"columns": ["a", "b"], "data": [[1, 2]]}')
            columns = value.get("columns", names)
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise _bad("dataframe_split 'columns' must be a list of column names", allowed=names[:20],
                           got=repr(columns)[:80], fix="name the columns as strings")
            rows = value["data"]
            if len(rows) > max_rows:
                raise _too_many_rows(len(rows), max_rows)
            if not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
                raise _bad(f"every row of dataframe_split 'data' must be a list of {len(columns)} values",
                           allowed=f"{len(columns)} values per row", got=repr(rows[:1])[:80], fix="one value per column")
            frame = pd.DataFrame(rows, columns=columns)
        elif isinstance(value, dict):  # instances/inputs as columns: {"a": [1, 2], "b": [3, 4]}
            if not all(isinstance(v, list) for v in value.values()) or len({len(v) for v in value.values()}) > 1:
                raise _bad(f"{key} as columns must map each column to a list of the same length",
                           allowed="equal-length lists", got=repr(value)[:80], fix='send {"a": [1, 2], "b": [3, 4]}')
            frame = pd.DataFrame(value)
        elif isinstance(value, list):
            if len(value) > max_rows:
                raise _too_many_rows(len(value), max_rows)
            if all(isinstance(r, dict) for r in value):
                frame = pd.DataFrame.from_records(value)
            elif key != "dataframe_records" and all(isinstance(r, list) and len(r) == len(names) for r in value):
                frame = pd.DataFrame(value, columns=names)  # rows in the schema's column order
            else:
                raise _bad(f"{key} must be a list of row objects" + ("" if key == "dataframe_records" else
                           f" or of rows of {len(names)} values"), allowed=names[:20], got=repr(value[:1])[:80],
                           fix='send [{"a": 1, "b": 2}, ...]')
        else:
            raise _bad(f"{key} must be a list or an object", allowed="list, object", got=type(value).__name__,
                       fix="see the MLflow scoring protocol")
    except (ValueError, TypeError) as exc:  # pandas refusing a ragged or odd structure
        raise _bad(f"{key} does not form a table", allowed="rows of equal length", got=str(exc)[:120],
                   fix="send one value per column in every row") from None
    if len(frame) == 0:
        raise _bad("the request has no rows", allowed="1 or more rows", got=0, fix="send at least one row")
    if len(frame) > max_rows:
        raise _too_many_rows(len(frame), max_rows)
    if frame.columns.duplicated().any():
        raise _bad("a column is given twice", allowed="each column once", got=str(frame.columns[frame.columns.duplicated()][0]),
                   fix="send each column once")
    for name in frame.columns:
        if frame[name].dtype == object:
            cells = frame[name].tolist()
            bad = next((i for i, v in enumerate(cells) if not (v is None or isinstance(v, (str, int, float, bool)))), None)
            if bad is not None:
                raise _bad(f"column {str(name)[:80]!r}, row {bad + 1} is not a single value", allowed="a string, number, "
                           "boolean or null per cell", got=repr(cells[bad])[:80], fix="send one plain value per cell")
    for col in schema.features:
        if col.kind != "numeric" or col.name not in frame:
            continue
        values = frame[col.name]
        if values.dtype.kind not in "fiu":  # mixed: numbers past float64 (10**400) here, text is the schema's
            numbers = np.array([v if isinstance(v, float) else (math.inf if abs(v) > 2**1000 else float(v))
                                if _is_number(v) else 0.0 for v in values], dtype=np.float64)
        else:
            numbers = values.to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            outside = np.abs(numbers) > min(float_max, FLOAT_MAX["FP64"])
        if outside.any():
            row = int(np.flatnonzero(outside)[0]) + 1
            raise _bad(f"column {col.name!r}, row {row} is infinite or out of the range the model computes in",
                       allowed="finite numbers", got=repr(numbers[row - 1]), fix="send finite numbers")
    return frame
