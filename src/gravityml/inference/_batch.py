"""Batch scoring of files: read, check against the schema, predict with confidence, write atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gravityml.data import check_writable, read_table, whole_number_columns, write_table
from gravityml.errors import DataError
from gravityml.inference._load import load
from gravityml.models import GravityModel
from gravityml.tracking import Workspace


@dataclass(frozen=True)
class BatchResult:
    model_ref: str
    rows: int
    output: Path
    columns: list[str]


def score_frame(model: GravityModel, frame: pd.DataFrame, *, proba: bool = False, keep_input: bool = True) -> pd.DataFrame:
    """``frame`` with the model's prediction columns appended (``proba_<class>`` with ``proba``)."""
    scored = model.predict(frame)
    parts = [frame] if keep_input else []
    parts.append(scored)
    if proba:
        probabilities = model.predict_proba(frame)
        parts.append(probabilities.add_prefix("proba_"))
    out = pd.concat(parts, axis=1)
    return out.loc[:, ~out.columns.duplicated(keep="last")]


def predict_file(
    ref: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    proba: bool = False,
    keep_input: bool = True,
    workspace: Workspace | None = None,
    logger: Any = None,
) -> BatchResult:
    """Score ``input_path`` (CSV/Parquet/JSONL) with model ``ref`` into ``output_path``.

    The output is written only when every row was scored: a bad row fails the whole batch and
    leaves no output file.
    """
    output = check_writable(output_path)
    if output.exists() and Path(input_path).exists() and output.resolve() == Path(input_path).resolve():
        raise DataError(
            "output would overwrite the input",
            allowed="an output path other than the input's",
            got=str(output),
            fix="write the predictions to another file",
        )
    model = load(ref, workspace=workspace)
    if Path(input_path).is_dir():  # a folder of image files, for a model trained on images
        scored = _score_images(model, Path(input_path), proba=proba)
    else:
        table = read_table(str(input_path), role="input")
        started = time.perf_counter()
        scored = score_frame(model, table.frame, proba=proba, keep_input=keep_input)
        if logger is not None:  # a PredictionLogger (--log-predictions): queued, written in the background
            elapsed_ms = (time.perf_counter() - started) * 1000 / max(1, len(scored))
            logger.log(table.frame, scored, model_version=str(model.meta.get("ref", ref)),
                       latency_ms=elapsed_ms)
        for column in whole_number_columns(table.frame) if keep_input else []:  # 3 stays 3, not 3.0
            if column in scored.columns and column not in ("prediction", "confidence"):
                scored[column] = scored[column].astype("Int64")
    write_table(scored, output)
    return BatchResult(model_ref=str(model.meta.get("ref", ref)), rows=len(scored), output=output, columns=list(scored.columns))


def _score_images(model: GravityModel, folder: Path, *, proba: bool) -> pd.DataFrame:
    """One row per image file: ``file``, then the predictions (pixels are not repeated)."""
    from gravityml.data._images import read_image_files

    image = model.meta.get("image")
    if not image:
        raise DataError(
            f"input {str(folder)!r} is a folder, but model {model.meta.get('ref', '')!r} was not trained on images",
            allowed="a CSV, Parquet or JSONL file of rows",
            got=str(folder),
            fix="pass a file of rows, or a model trained on an image folder or sklearn:digits",
        )
    frame = read_image_files(folder, image)
    scored = score_frame(model, frame.drop(columns=["file"]), proba=proba, keep_input=False)
    return pd.concat([frame[["file"]], scored], axis=1)
