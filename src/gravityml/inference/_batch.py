"""Batch scoring of files: read, check against the schema, predict with confidence, write atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gravityml.data import check_writable, read_table, write_table
from gravityml.errors import DataError
from gravityml.models import GravityModel
from gravityml.tracking import Workspace
from gravityml.inference._load import load


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
) -> BatchResult:
    """Score ``input_path`` (CSV/Parquet/JSONL) with model ``ref`` into ``output_path``.

    The output is written only when every row was scored: a bad row fails the whole batch and
    leaves no output file.
    """
    output = check_writable(output_path)
    if output.exists() and Path(input_path).exists() and output.resolve() == Path(input_path).resolve():
        raise DataError(
            "output would overwrite the input",
            got=str(output),
            fix="write the predictions to another file",
        )
    table = read_table(str(input_path), role="input")
    model = load(ref, workspace=workspace)
    scored = score_frame(model, table.frame, proba=proba, keep_input=keep_input)
    write_table(scored, output)
    return BatchResult(model_ref=str(model.meta.get("ref", ref)), rows=len(scored), output=output, columns=list(scored.columns))
