"""The training schema: which columns a model was fitted on, their kinds, and the classes it knows.

It is saved with every model and checked against every row that reaches ``predict``, so that a
missing column, a text value in a numeric column, or an unseen category is an error naming the
column and the row, not a silent wrong answer (layer 1: depends on pandas only).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from gravityml.errors import DataError, SchemaError

ColumnKind = Literal["numeric", "boolean", "categorical", "text"]
ProblemKind = Literal["classification", "regression"]

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind
    dtype: str
    categories: tuple[str, ...] | None = None
    nullable: bool = True


@dataclass(frozen=True)
class Schema:
    """Feature columns (in order), the target's name and kind, and the class labels."""

    features: tuple[Column, ...]
    target: str | None = None
    problem: ProblemKind | None = None
    classes: tuple[Any, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        target: str | None = None,
        problem: ProblemKind | None = None,
        classes: Sequence[Any] | None = None,
        text_columns: Iterable[str] = (),
    ) -> Schema:
        text = set(text_columns)
        columns = []
        for name in frame.columns:
            if name == target:
                continue
            series = frame[name]
            kind = _kind_of(series, is_text=name in text)
            categories = None
            if kind == "categorical":
                categories = tuple(sorted({_category_text(v) for v in series.dropna().unique()}))
            columns.append(
                Column(
                    name=str(name),
                    kind=kind,
                    dtype=str(series.dtype),
                    categories=categories,
                    nullable=bool(series.isna().any()),
                )
            )
        return cls(
            features=tuple(columns),
            target=target,
            problem=problem,
            classes=tuple(_plain(c) for c in classes) if classes is not None else None,
        )

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    def columns_of(self, kind: ColumnKind) -> list[str]:
        return [c.name for c in self.features if c.kind == kind]

    # ---- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(c).items()}
            for c in self.features
        ]
        data["classes"] = list(self.classes) if self.classes is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        features = tuple(
            Column(
                name=c["name"],
                kind=c["kind"],
                dtype=c["dtype"],
                categories=tuple(c["categories"]) if c.get("categories") is not None else None,
                nullable=c.get("nullable", True),
            )
            for c in data["features"]
        )
        classes = data.get("classes")
        return cls(
            features=features,
            target=data.get("target"),
            problem=data.get("problem"),
            classes=tuple(classes) if classes is not None else None,
            extra=dict(data.get("extra") or {}),
        )

    # ---- checking -----------------------------------------------------------------------------

    def validate(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame``'s feature columns, in training order and types, or a :class:`SchemaError`.

        Extra columns are ignored. Rows are named 1-based, as a person counts them in a file
        (the header is not a row).
        """
        if not isinstance(frame, pd.DataFrame):
            raise DataError(
                "input must be a table (pandas DataFrame)",
                got=type(frame).__name__,
                fix="pass a DataFrame, or a CSV/Parquet/JSONL file on the command line",
            )
        if len(frame) == 0:
            raise DataError(
                "input has no rows",
                got="0 rows",
                fix="give at least one row with the columns the model was trained on",
            )
        missing = [c.name for c in self.features if c.name not in frame.columns]
        if missing:
            named = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise SchemaError(
                f"input lacks column{'s' if len(missing) > 1 else ''} {named} that the model was trained on",
                allowed=self.feature_names,
                got=f"{len(frame.columns)} columns, {len(self.features) - len(missing)} of the"
                f" {len(self.features)} the model needs",
                fix="add the missing columns (empty values are allowed where the model saw them)",
            )
        out = {}
        for col in self.features:
            out[col.name] = _coerce(frame[col.name], col)
            if not col.nullable:
                _refuse_missing(frame[col.name], out[col.name], col)
        return pd.DataFrame(out, index=frame.index)


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (numpy scalars become Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _kind_of(series: pd.Series, *, is_text: bool) -> ColumnKind:
    if is_text:
        return "text"
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    return "categorical"


def _first_bad(series: pd.Series, bad: pd.Series) -> tuple[int, Any]:
    position = int(np.flatnonzero(bad.to_numpy())[0])
    return position + 1, _plain(series.iloc[position])


def _refuse_missing(raw: pd.Series, coerced: pd.Series, col: Column) -> None:
    """An empty value where training saw none is refused: imputing it would be a silent guess."""
    missing = raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy()
    if col.kind != "text":
        missing |= coerced.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0]) + 1
        raise SchemaError(
            f"column {col.name!r}, row {row}: empty value, but the model never saw a missing value there"
            f" ({int(missing.sum())} such row{'s' if missing.sum() > 1 else ''}; schema: nullable: false)",
            allowed="a value in every row" + (" (numbers)" if col.kind == "numeric" else ""),
            got="an empty value",
            fix=f"fill column {col.name!r} in the input, or retrain on data where it can be empty",
        )


def _coerce(series: pd.Series, col: Column) -> pd.Series:
    if col.kind == "numeric":
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            return series.astype("float64")  # the common case: nothing to parse or report
        numbers = pd.to_numeric(series, errors="coerce")
        bad = numbers.isna() & series.notna() & (series.astype(str).str.strip() != "")
        if bad.any():
            row, value = _first_bad(series, bad)
            raise SchemaError(
                f"column {col.name!r}, row {row}: {value!r} is not a number"
                f" ({int(bad.sum())} such row{'s' if bad.sum() > 1 else ''})",
                allowed="numbers (or an empty value)",
                got=value,
                fix=f"correct column {col.name!r} in the input",
            )
        return numbers.astype("float64")
    if col.kind == "boolean":
        if pd.api.types.is_bool_dtype(series):
            return series.astype("float64")
        if pd.api.types.is_numeric_dtype(series) and series.dropna().isin([0, 1]).all():
            return series.astype("float64")  # 0/1, as validated rows already hold them
        text = series.astype(str).str.strip().str.lower()
        values = text.map(lambda v: True if v in _TRUE else False if v in _FALSE else None)
        bad = values.isna() & series.notna()
        if bad.any():
            row, value = _first_bad(series, bad)
            raise SchemaError(
                f"column {col.name!r}, row {row}: {value!r} is not true or false",
                allowed=["true", "false", "1", "0"],
                got=value,
                fix=f"correct column {col.name!r} in the input",
            )
        return values.astype("float64")
    if col.kind == "categorical":
        text = series.map(lambda v: v if pd.isna(v) else _category_text(v))
        known = set(col.categories or ())
        bad = text.notna() & ~text.isin(known)
        if bad.any():
            row, value = _first_bad(series, bad)
            raise SchemaError(
                f"column {col.name!r}, row {row}: category {value!r} was not seen in training",
                allowed=list(col.categories or ()),
                got=value,
                fix=f"use a known category in column {col.name!r}, or retrain on data that has it",
            )
        return text.astype(object)
    return series.fillna("").astype(str)


def _category_text(value: Any) -> str:
    # 3 and 3.0 read from different files must be the same category.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
