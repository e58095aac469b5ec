"""The reference profile stored with a model: what its training data and test predictions looked like.

``profile.json`` sits in the model folder beside ``gravityml.json``. Monitoring compares recent rows
with it (``gravityml monitor``); a folder written before profiles existed simply has none, and
monitoring says so. The profile is compact: per feature a few quantiles, a histogram on the
reference deciles (the bins of the population stability index), the missing rate, category
frequencies, and a small deterministic sample of values so that a two-sample Kolmogorov-Smirnov
test can run later without the training data.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gravityml.schema import Schema

PROFILE = "profile.json"
PROFILE_VERSION = 1
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
PSI_BINS = 10
#: values kept per numeric column for the KS test, and the cap over all columns together
SAMPLE_PER_COLUMN = 500
SAMPLE_TOTAL = 50_000
#: a column with more distinct values than this is summarised by its most frequent ones
MAX_CATEGORIES = 200
SEED = 0


def numeric_summary(values: pd.Series, *, sample_size: int = SAMPLE_PER_COLUMN) -> dict[str, Any]:
    """Quantiles, a histogram on the decile edges, the missing rate and a sample of ``values``."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    present = numbers.dropna().to_numpy()
    out: dict[str, Any] = {
        "kind": "numeric",
        "count": len(numbers),
        "missing_rate": float(numbers.isna().mean()) if len(numbers) else 0.0,
    }
    if len(present) == 0:
        out.update(quantiles={}, histogram={"edges": [], "counts": []}, sample=[], mean=None, std=None)
        return out
    qs = np.quantile(present, QUANTILES)
    inner = np.unique(np.quantile(present, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(inner, present, side="right"), minlength=len(inner) + 1)
    rng = np.random.default_rng(SEED)
    sample = present if len(present) <= sample_size else rng.choice(present, size=sample_size, replace=False)
    out.update(
        quantiles={f"{q:g}": float(v) for q, v in zip(QUANTILES, qs)},
        # edges are the inner cut points: bin i holds values in [edges[i-1], edges[i]), open at both ends
        histogram={"edges": [float(e) for e in inner], "counts": [int(c) for c in counts]},
        sample=[float(v) for v in np.sort(sample)],
        mean=float(np.mean(present)),
        std=float(np.std(present)),
    )
    return out


def categorical_summary(values: pd.Series) -> dict[str, Any]:
    """Category frequencies (counts of the most frequent ones) and the missing rate of ``values``."""
    text = values.map(lambda v: v if pd.isna(v) else _text(v))
    counts = text.dropna().value_counts()
    kept = counts.iloc[:MAX_CATEGORIES]
    return {
        "kind": "categorical",
        "count": len(values),
        "missing_rate": float(values.isna().mean()) if len(values) else 0.0,
        "frequencies": {str(k): int(v) for k, v in kept.items()},
        "other": int(counts.iloc[MAX_CATEGORIES:].sum()),
    }


def text_summary(values: pd.Series) -> dict[str, Any]:
    """Free text is profiled by its length in characters."""
    lengths = values.fillna("").astype(str).str.len()
    out = numeric_summary(lengths)
    out["kind"] = "text"
    out["missing_rate"] = float(values.isna().mean()) if len(values) else 0.0
    return out


def column_summary(values: pd.Series, kind: str, *, sample_size: int = SAMPLE_PER_COLUMN) -> dict[str, Any]:
    if kind in ("numeric", "boolean"):
        return numeric_summary(values, sample_size=sample_size)
    if kind == "text":
        return text_summary(values)
    return categorical_summary(values)


def output_kind(values: pd.Series, model_kind: str = "") -> str:
    """How a prediction column is compared: numbers as numbers, labels and flags as categories."""
    if values.name == "prediction" and model_kind in ("classifier", "clusterer"):
        return "categorical"
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "categorical"
    return "numeric"


def build_profile(
    train: pd.DataFrame,
    schema: Schema,
    *,
    predictions: pd.DataFrame | None = None,
    metrics: dict[str, float] | None = None,
    kind: str = "",
    test_rows: int = 0,
) -> dict[str, Any]:
    """The profile of ``train`` (the training rows' features) and of ``predictions`` on the test split."""
    n_numeric = max(1, sum(c.kind in ("numeric", "boolean", "text") for c in schema.features))
    per_column = max(20, min(SAMPLE_PER_COLUMN, SAMPLE_TOTAL // n_numeric))
    features = {
        c.name: column_summary(train[c.name], c.kind, sample_size=per_column)
        for c in schema.features
        if c.name in train.columns
    }
    outputs: dict[str, Any] = {}
    if predictions is not None:
        for name in predictions.columns:
            if str(name).startswith("proba_") or name in ("lower", "upper"):
                continue  # implied by the prediction (and confidence) columns
            outputs[str(name)] = column_summary(predictions[name], output_kind(predictions[name], kind))
    return {
        "profile_version": PROFILE_VERSION,
        "kind": kind,
        "train_rows": len(train),
        "test_rows": int(test_rows),
        "features": features,
        "predictions": outputs,
        "metrics": {k: float(v) for k, v in (metrics or {}).items() if k.startswith("test/") and _finite(v)},
        "target": schema.target,
        "classes": list(schema.classes) if schema.classes is not None else None,
    }


def profile_training(model_dir: Path, model: Any, dataset: Any, metrics: dict[str, float]) -> Path | None:
    """Write ``profile.json`` into ``model_dir`` for a model trained on ``dataset``.

    ``dataset`` is a :class:`gravityml.data.Dataset` (its training split is profiled, the model
    predicts its test split). A profile that cannot be made (an exotic kind of data) is a warning,
    never a failed training run: monitoring reports the profile as missing.
    """
    try:
        split = dataset.split()
        schema: Schema = model.schema
        columns = [c for c in schema.feature_names if c in split.train.columns]
        predictions = model.predict(split.test[columns]) if len(split.test) else None
        profile = build_profile(
            split.train[columns],
            schema,
            predictions=predictions,
            metrics=metrics,
            kind=str(getattr(model, "kind", "")),
            test_rows=len(split.test),
        )
    except Exception as exc:  # noqa: BLE001 - a profile is an extra; say why it is missing
        warnings.warn(f"no reference profile stored with the model: {type(exc).__name__}: {exc}", stacklevel=2)
        return None
    return write_profile(model_dir, profile)


def write_profile(model_dir: str | Path, profile: dict[str, Any]) -> Path:
    path = Path(model_dir) / PROFILE
    tmp = path.with_name(f".{PROFILE}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(profile, handle, default=_json_default)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path


def read_profile(model_dir: str | Path) -> dict[str, Any] | None:
    """The profile stored in a model folder, or ``None`` for folders written before profiles."""
    path = Path(model_dir) / PROFILE
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _finite(value: Any) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
