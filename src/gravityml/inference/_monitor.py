"""Drift monitoring: recent rows (a file, a folder, prediction logs) against a model's reference profile.

Each feature is compared with the profile stored at training time (``profile.json``):

- the population stability index on the reference's decile bins (or its categories), and
- a test from ``scipy.stats``: two-sample Kolmogorov-Smirnov for numbers (against the profile's
  sample), chi-squared on the contingency table of category counts for categories.

A feature is *drifted* when both say so: the test's p-value is below ``alpha`` after a Bonferroni
correction over the columns checked (so a clean sample of a 30-feature model is not flagged one
time in five by chance) and the PSI is at least ``psi``. The PSI floor keeps a huge sample from
flagging a shift too small to matter; the p-value keeps a small sample from flagging noise (the
PSI of a few hundred rows is biased upwards). Predictions and confidence are compared the same
way; rows that break the schema (missing columns, text in a number column, unseen categories)
are counted as violations and left out of the predictions.
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from gravityml.data import FORMATS, atomic_write, read_table
from gravityml.errors import DataError, ModelError
from gravityml.models import GravityModel, load_model
from gravityml.models._profile import column_summary, read_profile
from gravityml.schema import Schema
from gravityml.tracking import ModelVersion, Workspace, download, start_run
from gravityml.tracking._registry import set_version_tags

#: columns a prediction log adds to the input columns (see ``_predlog``)
LOG_PREFIX = "_gml_"
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class Thresholds:
    """When a column counts as drifted, and when the whole check fails (exit code 1)."""

    alpha: float = 0.01  # family-wise: divided by the number of columns compared (Bonferroni)
    psi: float = 0.2  # 0.1-0.25 is "some shift", above 0.25 "major" in the credit-scoring literature
    max_drifted_features: int = 0  # more drifted features than this fails the check
    missing_rate: float = 0.1  # an absolute rise of the missing rate above this is a violation
    metric_drop: float = 0.05  # a metric worse than the training one by more than this fails the check
    prediction_drift: bool = True  # drift of predictions or confidence fails the check

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Thresholds:
        known = {k: v for k, v in (values or {}).items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)


@dataclass(frozen=True)
class ColumnDrift:
    """One column's comparison with the reference."""

    name: str
    kind: str
    test: str
    statistic: float
    p_value: float
    psi: float
    missing_reference: float
    missing_current: float
    drifted: bool
    rows: int
    note: str = ""
    reference_bins: list[float] = field(default_factory=list)
    current_bins: list[float] = field(default_factory=list)
    bin_labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MonitorReport:
    """Everything one monitoring pass found, and whether it is over the thresholds."""

    model_ref: str
    rows: int
    features: list[ColumnDrift]
    predictions: list[ColumnDrift]
    violations: list[str]
    metrics: dict[str, dict[str, float]]
    thresholds: Thresholds
    drifted: bool
    reasons: list[str]
    missing_profile: bool = False
    run_id: str = ""
    png: str = ""
    selection: str = ""  # which prediction-log rows were compared (--logs)

    @property
    def drifted_features(self) -> list[str]:
        return [c.name for c in self.features if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        def column(c: ColumnDrift) -> dict[str, Any]:
            out = asdict(c)
            for key in ("reference_bins", "current_bins", "bin_labels"):
                out.pop(key)
            return out

        return {
            "model_ref": self.model_ref,
            "rows": self.rows,
            "drifted": self.drifted,
            "reasons": self.reasons,
            "drifted_features": self.drifted_features,
            "features": [column(c) for c in self.features],
            "predictions": [column(c) for c in self.predictions],
            "violations": self.violations,
            "metrics": self.metrics,
            "thresholds": asdict(self.thresholds),
            "missing_profile": self.missing_profile,
            "run_id": self.run_id,
            "png": self.png,
            "selection": self.selection,
        }


# ---- reading recent rows ---------------------------------------------------------------------------


def read_recent(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Rows from a file (CSV, Parquet, JSON Lines; local or s3://) or every such file in a folder or
    under an s3:// prefix (names starting with a dot, such as files still being written, are skipped)."""
    if isinstance(source, pd.DataFrame):
        return source
    text = str(source)
    if text.startswith("s3://") and Path(urlparse(text).path).suffix.lower() not in FORMATS:
        return _read_s3_prefix(text)
    if not text.startswith("s3://") and Path(text).is_dir():
        files = sorted(p for p in Path(text).rglob("*") if p.is_file() and p.suffix.lower() in FORMATS
                       and not p.name.startswith("."))
        if not files:
            raise DataError(
                f"--data: folder {text!r} holds no table files",
                allowed=sorted(FORMATS),
                got=sorted(p.name for p in Path(text).iterdir())[:10],
                fix="point at a folder of CSV, Parquet or JSON Lines files",
            )
        return pd.concat([read_table(str(p), role="--data").frame for p in files], ignore_index=True)
    return read_table(text, role="--data").frame


def _read_s3_prefix(uri: str) -> pd.DataFrame:
    from pyarrow import fs

    from gravityml.data import s3_filesystem

    prefix = uri.removeprefix("s3://").rstrip("/")
    try:
        infos = s3_filesystem().get_file_info(fs.FileSelector(prefix, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise DataError(
            f"--data: {uri!r} could not be listed: {str(exc).strip().splitlines()[0]}",
            allowed="an s3:// prefix these credentials may list", got=uri,
            fix="check the bucket, prefix and credentials (AWS_* variables, AWS_ENDPOINT_URL)",
        ) from None
    keys = sorted(i.path for i in infos if i.type == fs.FileType.File and Path(i.path).suffix.lower() in FORMATS
                  and not Path(i.path).name.startswith("."))
    if not keys:
        raise DataError(
            f"--data: {uri!r} holds no table files", allowed=sorted(FORMATS),
            got=sorted(Path(i.path).name for i in infos)[:10],
            fix="point at an s3:// prefix of CSV, Parquet or JSON Lines files",
        )
    return pd.concat([read_table(f"s3://{k}", role="--data").frame for k in keys], ignore_index=True)


#: which logged rows ``--logs`` compares: the monitored version's (default), a named one, or all
ALL = "all"
ROLES = ("served", "shadow", ALL)


def select_logged(frame: pd.DataFrame, *, model_ref: str, registered: bool, version: str | None = None,
                  role: str | None = None) -> tuple[pd.DataFrame, str]:
    """The prediction-log rows of one version (and role), and a line saying what was kept.

    Rows logged for a ``--shadow`` or canary version are another model's answers, so by default only
    the rows of the monitored version are compared (``model_ref``, when it is a registered
    ``NAME/V``; a model folder needs a log of one version, or ``version``). ``version`` (``V``,
    ``NAME/V`` or ``all``) and ``role`` (``served``, ``shadow``, ``all``: the ``_gml_role`` the
    logger's caller gave) choose otherwise; ``role="shadow"`` alone takes the shadow's rows
    whatever their version (one version, or name it).
    """
    if role is not None and role not in ROLES:
        raise DataError(f"--role: unknown role {role!r}", allowed=list(ROLES), got=role,
                        fix="give served, shadow or all (the default: every role of the chosen version)")
    total = len(frame)
    kept = frame
    said: list[str] = []
    role_column, version_column = f"{LOG_PREFIX}role", f"{LOG_PREFIX}model_version"
    if role not in (None, ALL):
        roles = kept[role_column].fillna("served").astype(str) if role_column in kept.columns else \
            pd.Series("served", index=kept.index)  # logs from before roles were written: all served
        kept = kept[roles == role]
        said.append(f"role {role}")
    if version_column in kept.columns and version != ALL:
        logged = sorted(kept[version_column].dropna().astype(str).unique().tolist())
        wanted = version
        if wanted is not None and "/" not in wanted and "/" in model_ref:
            wanted = f"{model_ref.split('/')[0]}/{wanted}"
        if wanted is None and registered and role != "shadow":  # a shadow's rows are of another version
            wanted = model_ref
        if wanted is None and len(logged) > 1:
            raise DataError(
                f"--logs: the log holds rows of {len(logged)} model versions and {model_ref!r} names none of them",
                allowed=logged + [ALL], got=model_ref,
                fix="choose the rows to compare with --version NAME/V (or --version all)",
            )
        if wanted is not None:
            kept = kept[kept[version_column].astype(str) == wanted]
            said.append(f"version {wanted}")
            if kept.empty:
                raise DataError(
                    f"--logs: no logged rows of {wanted}" + (f" with role {role}" if role not in (None, ALL) else ""),
                    allowed=logged + [ALL], got=wanted,
                    fix="monitor a version the log holds, or pass --version with one of them (or all)",
                )
    elif version not in (None, ALL):
        raise DataError("--version: this log has no model version column", allowed=[ALL], got=version,
                        fix="leave out --version for logs written before versions were logged")
    if kept.empty:
        raise DataError(f"--logs: no logged rows with role {role}", allowed=list(ROLES), got=role,
                        fix="pass --role all, or the role the log holds")
    line = f"{len(kept)} of {total} logged rows" + (f" ({', '.join(said)})" if said else "")
    return kept.reset_index(drop=True), line


# ---- comparing ------------------------------------------------------------------------------------


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> float:
    """Population stability index of two bin distributions (counts or shares)."""
    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    if ref.sum() <= 0 or cur.sum() <= 0:
        return 0.0
    p = np.clip(ref / ref.sum(), PSI_EPSILON, None)
    q = np.clip(cur / cur.sum(), PSI_EPSILON, None)
    return float(np.sum((q - p) * np.log(q / p)))


def _numeric_drift(name: str, kind: str, ref: Mapping[str, Any], values: pd.Series, alpha: float,
                   thresholds: Thresholds) -> ColumnDrift:
    from scipy import stats

    cur = column_summary(values, kind, sample_size=10**9)
    sample = np.asarray(ref.get("sample") or [], dtype="float64")
    present = np.asarray(cur.get("sample") or [], dtype="float64")
    edges = np.asarray(ref["histogram"]["edges"], dtype="float64")
    ref_counts = np.asarray(ref["histogram"]["counts"], dtype="float64")
    if len(present) == 0 or len(sample) == 0:
        return ColumnDrift(name, kind, "ks", math.nan, math.nan, 0.0, ref["missing_rate"], cur["missing_rate"],
                           False, len(values), note="no values to compare")
    cur_counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    result = stats.ks_2samp(sample, present)
    index = psi(ref_counts, cur_counts)
    drifted = bool(result.pvalue < alpha and index >= thresholds.psi)
    labels = _bin_labels(edges)
    return ColumnDrift(
        name, kind, "ks", float(result.statistic), float(result.pvalue), index, ref["missing_rate"],
        cur["missing_rate"], drifted, len(values),
        reference_bins=list(ref_counts / max(ref_counts.sum(), 1)),
        current_bins=list(cur_counts / max(cur_counts.sum(), 1)),
        bin_labels=labels,
    )


def _categorical_drift(name: str, ref: Mapping[str, Any], values: pd.Series, alpha: float,
                       thresholds: Thresholds) -> ColumnDrift:
    from scipy import stats

    cur = column_summary(values, "categorical")
    ref_freq: dict[str, int] = dict(ref.get("frequencies") or {})
    cur_freq: dict[str, int] = dict(cur.get("frequencies") or {})
    categories = sorted(set(ref_freq) | set(cur_freq))
    ref_counts = np.array([ref_freq.get(c, 0) for c in categories], dtype="float64")
    cur_counts = np.array([cur_freq.get(c, 0) for c in categories], dtype="float64")
    new = [c for c in categories if c not in ref_freq]
    note = f"new categories: {new[:5]}" if new else ""
    if cur_counts.sum() == 0 or len(categories) < 2:
        return ColumnDrift(name, "categorical", "chi2", math.nan, math.nan, 0.0, ref["missing_rate"],
                           cur["missing_rate"], False, len(values), note=note or "no values to compare")
    chi2, p_value, _, _ = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]))
    index = psi(ref_counts, cur_counts)
    drifted = bool(p_value < alpha and index >= thresholds.psi)
    return ColumnDrift(
        name, "categorical", "chi2", float(chi2), float(p_value), index, ref["missing_rate"], cur["missing_rate"],
        drifted, len(values), note=note,
        reference_bins=list(ref_counts / ref_counts.sum()), current_bins=list(cur_counts / cur_counts.sum()),
        bin_labels=categories,
    )


def _bin_labels(edges: np.ndarray) -> list[str]:
    if len(edges) == 0:
        return ["all"]
    cuts = [f"{e:.3g}" for e in edges]
    return [f"<{cuts[0]}"] + [f"{a}..{b}" for a, b in itertools.pairwise(cuts)] + [f">={cuts[-1]}"]


def _column_drift(name: str, ref: Mapping[str, Any], values: pd.Series, alpha: float,
                  thresholds: Thresholds) -> ColumnDrift:
    if ref["kind"] == "categorical":
        return _categorical_drift(name, ref, values, alpha, thresholds)
    return _numeric_drift(name, ref["kind"], ref, values, alpha, thresholds)


def schema_violations(schema: Schema, frame: pd.DataFrame) -> tuple[list[str], pd.Series]:
    """What in ``frame`` breaks the training schema, and which rows can still be scored."""
    problems: list[str] = []
    ok = pd.Series(True, index=frame.index)
    missing = [c.name for c in schema.features if c.name not in frame.columns]
    if missing:
        problems.append(f"missing columns: {missing}")
        return problems, pd.Series(False, index=frame.index)
    for col in schema.features:
        series = frame[col.name]
        if col.kind == "numeric":
            numbers = pd.to_numeric(series, errors="coerce")
            bad = numbers.isna() & series.notna() & (series.astype(str).str.strip() != "")
            if bad.any():
                problems.append(f"column {col.name!r}: {int(bad.sum())} values that are not numbers")
                ok &= ~bad
        elif col.kind == "categorical":
            text = series.map(lambda v: v if pd.isna(v) else _category_text(v))
            bad = text.notna() & ~text.isin(set(col.categories or ()))
            if bad.any():
                unseen = sorted(text[bad].unique().tolist())[:5]
                problems.append(f"column {col.name!r}: {int(bad.sum())} rows with categories unseen in training "
                                f"{unseen}")
                ok &= ~bad
        if not col.nullable and series.isna().any():
            problems.append(f"column {col.name!r}: {int(series.isna().sum())} empty values (none in training)")
    return problems, ok


def _category_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def current_metrics(model: GravityModel, frame: pd.DataFrame, target: str) -> dict[str, float]:
    """The training metrics that can be recomputed on labelled rows (same names, ``test/`` prefix)."""
    from sklearn import metrics as skm

    labelled = frame[frame[target].notna()]
    if labelled.empty:
        return {}
    out = model.predict(labelled)
    y = labelled[target].to_numpy()
    if model.kind == "classifier":
        pred = out["prediction"].to_numpy()
        if y.dtype.kind != pred.dtype.kind:
            y, pred = y.astype(str), pred.astype(str)
        return {
            "test/accuracy": float(skm.accuracy_score(y, pred)),
            "test/balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
            "test/f1_macro": float(skm.f1_score(y, pred, average="macro", zero_division=0)),
        }
    if model.kind == "regressor":
        pred = out["prediction"].to_numpy(dtype="float64")
        y = y.astype("float64")
        return {
            "test/rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
            "test/mae": float(skm.mean_absolute_error(y, pred)),
            "test/r2": float(skm.r2_score(y, pred)) if len(y) > 1 else math.nan,
        }
    return {}


LOWER_IS_BETTER = ("rmse", "mae", "log_loss")


def compare(
    model: GravityModel,
    profile: Mapping[str, Any],
    frame: pd.DataFrame,
    thresholds: Thresholds | None = None,
    *,
    logged_predictions: pd.DataFrame | None = None,
    model_ref: str = "",
) -> MonitorReport:
    """Compare ``frame`` with ``profile`` (pure: no files, no tracking)."""
    thresholds = thresholds or Thresholds()
    if len(frame) == 0:
        raise DataError("monitor: the recent data has no rows", got="0 rows", fix="give at least one row")
    ref_features: Mapping[str, Any] = profile.get("features", {})
    ref_outputs: Mapping[str, Any] = profile.get("predictions", {})
    violations, ok = schema_violations(model.schema, frame)
    present = [n for n in ref_features if n in frame.columns]
    outputs = logged_predictions
    if outputs is None and ok.any():
        outputs = model.predict(frame[ok])
    compared_outputs = [n for n in ref_outputs if outputs is not None and n in outputs.columns]
    alpha = thresholds.alpha / max(1, len(present) + len(compared_outputs))  # Bonferroni
    features = [_column_drift(n, ref_features[n], frame[n], alpha, thresholds) for n in present]
    for col in features:
        rise = col.missing_current - col.missing_reference
        if rise > thresholds.missing_rate:
            violations.append(f"column {col.name!r}: missing rate {col.missing_current:.1%} "
                              f"(training {col.missing_reference:.1%})")
    predictions = [
        _column_drift(n, ref_outputs[n], outputs[n], alpha, thresholds)
        for n in compared_outputs
        if outputs is not None
    ]
    metrics: dict[str, dict[str, float]] = {}
    target = profile.get("target") or model.schema.target
    if target and target in frame.columns and ok.any():
        now = current_metrics(model, frame[ok], str(target))
        for key, value in now.items():
            train = profile.get("metrics", {}).get(key)
            if train is not None:
                metrics[key] = {"training": float(train), "current": value}
    reasons: list[str] = []
    drifted_features = [c.name for c in features if c.drifted]
    if len(drifted_features) > thresholds.max_drifted_features:
        reasons.append(f"{len(drifted_features)} drifted features (over {thresholds.max_drifted_features}): "
                       f"{drifted_features}")
    drifted_outputs = [c.name for c in predictions if c.drifted]
    if thresholds.prediction_drift and drifted_outputs:
        reasons.append(f"prediction drift in {drifted_outputs}")
    if any("missing columns" in v or "unseen" in v or "not numbers" in v for v in violations):
        reasons.append(f"{len(violations)} schema violations")
    for key, pair in metrics.items():
        worse = (pair["current"] - pair["training"]) if key.endswith(LOWER_IS_BETTER) else \
            (pair["training"] - pair["current"])
        if worse > thresholds.metric_drop:
            reasons.append(f"{key} {pair['current']:.4f} vs {pair['training']:.4f} in training")
    return MonitorReport(
        model_ref=model_ref or str(model.meta.get("ref", "")),
        rows=len(frame),
        features=features,
        predictions=predictions,
        violations=violations,
        metrics=metrics,
        thresholds=thresholds,
        drifted=bool(reasons),
        reasons=reasons,
    )


# ---- the whole pass: load, compare, draw, log ------------------------------------------------------


def monitor(
    ref: str | Path,
    *,
    data: str | Path | pd.DataFrame | None = None,
    logs: str | Path | None = None,
    thresholds: Thresholds | None = None,
    workspace: Workspace | None = None,
    png: str | Path | None = None,
    json_path: str | Path | None = None,
    log_run: bool = True,
    version: str | None = None,
    role: str | None = None,
) -> MonitorReport:
    """Compare recent rows (``data``) or prediction logs (``logs``) with the profile of ``ref``.

    From ``logs`` only the rows of the monitored version are compared unless ``version`` / ``role``
    say otherwise (see :func:`select_logged`): a shadow's or a canary's rows do not count.

    With a registered reference the pass is logged as an MLflow run in experiment
    ``NAME-monitor`` (metrics per feature, the JSON report, the PNG), and the version gets tags
    naming the run and its verdict.
    """
    if (data is None) == (logs is None):
        raise DataError(
            "monitor: give exactly one of --data or --logs",
            allowed=["--data FILE|DIR|s3://...", "--logs DIR|s3://..."],
            got={"data": str(data) if data is not None else None, "logs": str(logs) if logs is not None else None},
            fix="pass the rows to compare with --data, or a prediction-log folder with --logs",
        )
    ws = workspace or Workspace.current()
    model, folder, registered_version = _load(ref, ws)
    profile = read_profile(folder)
    if profile is None:
        raise ModelError(
            f"model {model.meta.get('ref', ref)!r} has no reference profile (it was trained before profiles were "
            "stored with models)",
            allowed="a model folder with profile.json",
            got=sorted(p.name for p in Path(folder).iterdir()),
            fix=f"retrain it (gravityml retrain {ref}) so that the new version carries a profile",
        )
    logged = None
    selection = ""
    if logs is not None:
        frame, selection = select_logged(read_recent(logs), model_ref=str(model.meta.get("ref", ref)),
                                         registered=registered_version is not None, version=version, role=role)
        logged = _logged_outputs(frame)
        frame = frame[[c for c in frame.columns if not c.startswith(LOG_PREFIX)]]
    else:
        assert data is not None
        frame = read_recent(data)
    report = replace(compare(model, profile, frame, thresholds, logged_predictions=logged,
                             model_ref=str(model.meta.get("ref", ref))), selection=selection)
    png_path = Path(png) if png is not None else None
    with tempfile.TemporaryDirectory(prefix="monitor-") as tmp:
        drawn = draw(report, png_path or Path(tmp) / "drift.png")
        if png_path is not None and drawn is not None:
            report = replace(report, png=str(png_path))
        if log_run and registered_version is not None:
            report = replace(report, run_id=_log(ws, registered_version, report, drawn))
    if json_path is not None:
        text = json.dumps(report.to_dict(), indent=2, default=str)
        atomic_write(Path(json_path), lambda tmp: _write_text(tmp, text))
    return report


def _load(ref: str | Path, ws: Workspace) -> tuple[GravityModel, Path, ModelVersion | None]:
    path = Path(ref)
    if (path / "gravityml.json").exists():
        model = load_model(path)
        model.meta.setdefault("ref", str(path))
        return model, path, None
    version, folder = download(ws, str(ref))
    model = load_model(folder)
    model.meta["ref"] = version.ref
    return model, folder, version


def _logged_outputs(frame: pd.DataFrame) -> pd.DataFrame | None:
    columns = {c: c[len(LOG_PREFIX):] for c in frame.columns if c.startswith(LOG_PREFIX)}
    wanted = {c: n for c, n in columns.items() if n in ("prediction", "confidence", "score", "is_anomaly")}
    return frame[list(wanted)].rename(columns=wanted) if wanted else None


def draw(report: MonitorReport, path: Path) -> Path | None:
    """Reference vs current distributions of the drifted columns (or the top three by PSI) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in report.features + report.predictions if c.drifted]
    if not columns:
        columns = sorted((c for c in report.features if c.bin_labels), key=lambda c: -c.psi)[:3]
    columns = [c for c in columns if c.bin_labels][:12]
    if not columns:
        return None
    cols = min(3, len(columns))
    rows = math.ceil(len(columns) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, col in zip(axes.flat, columns):
        x = np.arange(len(col.bin_labels))
        ax.bar(x - 0.2, col.reference_bins, width=0.4, label="training")
        ax.bar(x + 0.2, col.current_bins, width=0.4, label="recent")
        ax.set_xticks(x, col.bin_labels, rotation=60, fontsize=7)
        flag = "DRIFT " if col.drifted else ""
        ax.set_title(f"{flag}{col.name}: PSI {col.psi:.2f}, p {col.p_value:.2g}", fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    fig.suptitle(f"{report.model_ref}: {report.rows} recent rows vs training")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return path


def _log(ws: Workspace, version: ModelVersion, report: MonitorReport, png: Path | None) -> str:
    tags = {
        "gravityml.monitor.model": version.ref,
        "gravityml.monitor.model_run_id": version.run_id,
        "gravityml.monitor.drifted": str(report.drifted).lower(),
        "gravityml.monitor.reasons": "; ".join(report.reasons)[:5000],
    }
    if report.selection:
        tags["gravityml.monitor.selection"] = report.selection
    with start_run(ws, f"{version.name}-monitor", run_name=f"monitor-{version.ref}", tags=tags) as run:
        metrics: dict[str, float] = {"monitor/rows": float(report.rows),
                                     "monitor/drifted_features": float(len(report.drifted_features)),
                                     "monitor/violations": float(len(report.violations))}
        for col in report.features + report.predictions:
            group = "feature" if col in report.features else "output"
            key = _metric_key(col.name)
            metrics[f"{group}/{key}/psi"] = col.psi
            if not math.isnan(col.p_value):
                metrics[f"{group}/{key}/p_value"] = col.p_value
        for key, pair in report.metrics.items():
            metrics[f"current/{key.split('/', 1)[-1]}"] = pair["current"]
        run.log_metrics(metrics)
        run.log_dict(report.to_dict(), "monitor.json")
        if png is not None:
            run.log_artifact(png, "plots")
        run_id = run.run_id
    set_version_tags(ws, version.ref, {
        "lifecycle.monitor.last_run": run_id,
        "lifecycle.monitor.last_drifted": str(report.drifted).lower(),
        "lifecycle.monitor.last_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    return run_id


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _metric_key(name: str) -> str:
    # MLflow metric keys allow letters, digits, _ - . / and spaces
    return "".join(ch if ch.isalnum() or ch in "_-. " else "_" for ch in name)
