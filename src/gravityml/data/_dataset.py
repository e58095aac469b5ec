"""A job's data: the rows a spec names, its target, its problem kind and a deterministic split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from gravityml.data._io import Table, format_of, read_table, resolve_path
from gravityml.data._sources import load_sklearn
from gravityml.errors import DataError
from gravityml.schema import ProblemKind, Schema
from gravityml.spec import DataSpec, JobSpec, did_you_mean

MAX_CLASSES_FOR_INTEGER_TARGET = 20


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    validation: pd.DataFrame | None = None


@dataclass
class Dataset:
    """The rows of a job with the columns it uses. ``frame`` holds features and target."""

    frame: pd.DataFrame
    features: list[str]
    target: str | None
    problem: ProblemKind | None
    table: Table
    spec: DataSpec
    text_columns: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return self.table.fingerprint

    @property
    def uri(self) -> str:
        return self.table.uri

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - the field's convention
        return self.frame[self.features]

    @property
    def y(self) -> pd.Series | None:
        return self.frame[self.target] if self.target else None

    @property
    def labelled(self) -> pd.Series:
        """Rows whose target is present (all rows when there is no target)."""
        if not self.target:
            return pd.Series(True, index=self.frame.index)
        return self.frame[self.target].notna()

    def classes(self) -> list[object] | None:
        if self.problem != "classification" or not self.target:
            return None
        return sorted(self.frame[self.target].dropna().unique().tolist(), key=_sort_key)

    def schema(self) -> Schema:
        return Schema.from_frame(
            self.frame[self.features + ([self.target] if self.target else [])],
            target=self.target,
            problem=self.problem,
            classes=self.classes(),
            text_columns=self.text_columns,
        )

    def split(self, rows: pd.Series | None = None) -> Split:
        """Train / (validation) / test parts of ``rows`` (default: labelled rows), by the spec's seed."""
        frame = self.frame[rows if rows is not None else self.labelled]
        cfg = self.spec.split
        stratify = cfg.stratify if cfg.stratify is not None else self.problem == "classification"
        train, test = _split(frame, cfg.test, cfg.seed, self.target if stratify else None)
        validation = None
        if cfg.validation > 0:
            train, validation = _split(train, cfg.validation, cfg.seed + 1, self.target if stratify else None)
        return Split(train=train, test=test, validation=validation)


def _sort_key(value: object) -> tuple[int, object]:
    return (0, value) if isinstance(value, (int, float, np.number)) else (1, str(value))


def _split(frame: pd.DataFrame, fraction: float, seed: int, stratify_on: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    n_test = int(np.ceil(len(frame) * fraction))
    if n_test < 1 or len(frame) - n_test < 1:
        raise DataError(
            f"data.split: {len(frame)} rows cannot be split with a fraction of {fraction}",
            allowed="at least one row in each part",
            got=len(frame),
            fix="give more rows or change data.split",
        )
    strata = None
    if stratify_on is not None:
        counts = frame[stratify_on].value_counts()
        if counts.min() >= 2 and n_test >= len(counts) and len(frame) - n_test >= len(counts):
            strata = frame[stratify_on]
    train, test = train_test_split(frame, test_size=n_test, random_state=seed, stratify=strata)
    return train, test


def infer_problem(target: pd.Series, asked: Literal["auto", "classification", "regression"]) -> ProblemKind:
    if asked != "auto":
        return asked
    values = target.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "classification"
    integral = pd.api.types.is_integer_dtype(values) or bool(np.all(np.mod(values, 1) == 0))
    if integral and values.nunique() <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return "classification"
    return "regression"


def read_source(
    source: str, base_dir: Path | None = None, images: Any = None, columns: list[str] | None = None
) -> Table:
    """The table behind a ``data.source``: ``sklearn:NAME``, a path, file:// or s3:// URI, or a
    dataset name from the catalog (``gravityml.yaml``), which resolves to its URI. ``columns`` names
    the columns of a CSV without a header row (``data.header: false``)."""
    from gravityml.data._catalog import find_catalog, load_catalog

    if "/" not in source and ":" not in source and find_catalog(base_dir) is not None:
        entry = load_catalog(base_dir=base_dir).dataset_for(source)
        if entry is not None:
            source = entry[1].uri
    if source.startswith("sklearn:"):
        return load_sklearn(source.split(":", 1)[1])
    if not source.startswith("s3://") and resolve_path(source, base_dir).is_dir():
        from gravityml.data._images import load_image_folder  # a folder: one sub-folder per class

        return load_image_folder(resolve_path(source, base_dir), size=getattr(images, "size", None), mode=getattr(images, "mode", None))
    if columns is not None and format_of(source) not in ("csv", "tsv"):
        raise DataError(
            f"data.header: false is for CSV and TSV files; {source!r} is {format_of(source)}",
            allowed=["csv", "tsv"], got=format_of(source), fix="remove data.header and data.columns",
        )
    return read_table(source, base_dir, columns=columns)


def load_dataset(spec: JobSpec, *, table: Table | None = None) -> Dataset:
    """Read ``spec.data`` and check that the columns it names exist."""
    data = spec.data
    if data is None:
        raise DataError("this job has no data section", allowed="a data: section", got=None,
                        fix="add data: {source: ...}")
    table = table or read_source(data.source, spec.base_dir, images=data.images,
                                 columns=None if data.header else data.columns)
    frame = table.frame
    columns = list(frame.columns)
    if data.target is not None and data.target not in columns:
        raise DataError(
            f"data.target: column {data.target!r} not found{did_you_mean(data.target, columns)}",
            allowed=columns,
            got=data.target,
            fix="set data.target to one of the columns",
        )
    for key, names in (("data.features", data.features or []), ("data.drop", data.drop)):
        unknown = [n for n in names if n not in columns]
        if unknown:
            raise DataError(
                f"{key}: column {unknown[0]!r} not found{did_you_mean(unknown[0], columns)}",
                allowed=columns,
                got=unknown,
                fix=f"name only existing columns in {key}",
            )
    if data.text is not None and data.text not in columns:
        raise DataError(
            f"data.text: column {data.text!r} not found{did_you_mean(data.text, columns)}",
            allowed=columns,
            got=data.text,
            fix="set data.text to the column that holds the text",
        )
    features = data.features or [c for c in columns if c != data.target and c not in data.drop]
    if not features:
        raise DataError(
            "data: no feature columns are left",
            allowed="at least one feature column",
            got=columns,
            fix="keep at least one column besides the target",
        )
    keep = features + ([data.target] if data.target else [])
    frame = frame[keep].copy()
    if len(frame) == 0:
        raise DataError(f"data.source: {data.source!r} has no rows", allowed="at least one row", got=0,
                        fix="give a non-empty dataset")
    problem = None
    if data.target is not None and spec.task in ("supervised", "semi_supervised"):
        labelled = frame[data.target].dropna()
        if spec.task == "supervised":
            frame = frame[frame[data.target].notna()]
        else:
            _check_semi_supervised(data.target, len(labelled), len(frame))
        if len(labelled):
            problem = infer_problem(labelled, data.problem)
    elif data.target is not None:
        labelled = frame[data.target].dropna()
        problem = infer_problem(labelled, data.problem) if len(labelled) else None
    return Dataset(
        frame=frame,
        features=features,
        target=data.target,
        problem=problem,
        table=table,
        spec=data,
        text_columns=[data.text] if data.text else [],
    )


def _check_semi_supervised(target: str, labelled: int, rows: int) -> None:
    """A semi-supervised job needs both kinds of rows: labelled ones to learn the classes from and
    unlabelled ones (empty target) to learn the data's shape from."""
    if labelled == 0:
        raise DataError(
            f"data.target: column {target!r} is empty in every row; semi-supervised learning needs some labels",
            allowed="at least one labelled row per class",
            got=f"0 labelled of {rows} rows",
            fix="give labels for a few rows of each class (leave the others empty)",
        )
    if labelled == rows:
        raise DataError(
            f"data.target: column {target!r} has a value in every row, so there is nothing unlabelled to learn from",
            allowed="some rows with an empty target",
            got=f"{rows} labelled of {rows} rows",
            fix="use task: supervised, or leave the target empty in the rows whose label is unknown",
        )
