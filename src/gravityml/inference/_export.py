"""``gravityml export``: a model as an ONNX graph (optionally int8), with a parity report.

The export is built in a staging folder beside the target, compared with the original model on
held-out rows, and moved into place only when parity holds: a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from gravityml._files import publish_dir, staging_dir
from gravityml.data import load_dataset, read_source, read_table
from gravityml.errors import ExportError, GravityMLError
from gravityml.inference._load import load
from gravityml.inference._onnx import FORMAT, METADATA, ONNX_FILE, OnnxModel
from gravityml.models import GravityModel
from gravityml.tracking import Workspace, resolve

Quantize = Literal["int8"]
PARITY = "parity.json"
#: Default parity thresholds. Probabilities of tree ensembles move by up to ~0.1 on rows that sit on
#: a split threshold, because ONNX trees compare in float32 where scikit-learn uses float64
#: (https://onnx.ai/sklearn-onnx/auto_tutorial/plot_ebegin_float_double.html); labels still agree.
MIN_AGREEMENT = 0.995
MAX_DIFF = 0.2
MAX_HELD_OUT_ROWS = 5000
#: Model metadata an export carries: what its runtime needs (threshold: the saved anomaly cut-off).
KEPT_META = ("interval_half_width", "interval_coverage", "task", "model_type", "threshold", "threshold_rule", "sigma2")


#: Version of the metadata.json layout (docs/export-metadata.schema.json). 2: one layout for every
#: flavor (inputs always carry name, datatype, shape, columns, missing; outputs map role -> name).
FORMAT_VERSION = 2
_DATATYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64"}


def unified_graph(model: GravityModel, graph: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any]:
    """A flavor's graph description in the one layout every export shares.

    Every input names its ``columns``: the training columns it takes side by side, raw (the graph
    holds the preprocessing), or ``None`` where the graph takes rows encoded outside it (one-hot
    categories, token ids; ``preprocessing`` says how). A torch graph whose input matrix is the
    numeric columns themselves (checked here on the sample rows) names them.
    """
    inputs = []
    for spec in graph["inputs"]:
        datatype = spec.get("datatype") or _DATATYPES[str(spec["dtype"])]
        shape = spec.get("shape") or ["batch", None]
        columns = spec.get("columns")
        if columns is None and len(graph["inputs"]) == 1:
            columns = _raw_columns(model, frame)
        inputs.append(
            {
                "name": spec["name"],
                "datatype": datatype,
                "shape": ["batch", shape[-1]],
                "columns": columns,
                "missing": "" if datatype == "STRING" else "NaN" if datatype.startswith("FP") else None,
            }
        )
    outputs = graph["outputs"]
    roles = {o["name"]: o["name"] for o in outputs} if isinstance(outputs, list) else dict(outputs)
    opset = graph.get("opset")
    opsets = {"": opset} if isinstance(opset, int) else dict(opset or {})  # domain -> version
    return {"inputs": inputs, "outputs": roles, "preprocessing": graph.get("preprocessing"), "opset": opsets}


def _raw_columns(model: GravityModel, frame: pd.DataFrame) -> list[str] | None:
    """The schema's columns when the model's encoded matrix is exactly those columns, else None."""
    encode = getattr(model, "encode", None)
    names = model.schema.feature_names
    if encode is None or any(c.kind not in ("numeric", "boolean") for c in model.schema.features):
        return None
    sample = frame.head(32)
    encoded = np.asarray(encode(sample), dtype="float64")
    raw = sample[names].to_numpy(dtype="float64")
    return names if encoded.shape == raw.shape and np.allclose(encoded, raw, equal_nan=True) else None


@dataclass(frozen=True)
class ExportReport:
    directory: Path
    model_file: Path
    parity: dict[str, Any]


def held_out_rows(model: GravityModel, ref: str, workspace: Workspace) -> pd.DataFrame:
    """The test split of the job that trained registered model ``ref`` (as the job's spec split it)."""
    from gravityml.spec import load_spec

    version = resolve(workspace, model.meta.get("ref", ref))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = workspace.client.download_artifacts(version.run_id, "job.yaml", tmp)
        except Exception:  # MLflow raises its own types for a missing artefact
            raise ExportError(
                f"no job spec is stored with {version.ref}, so its held-out rows are unknown",
                allowed="a version whose run stored job.yaml, or --data FILE",
                got=version.run_id,
                fix="give held-out rows with --data FILE",
            ) from None
        spec = load_spec(local)
    uri = version.lineage.get("data_uri") or (spec.data.source if spec.data else "")
    if spec.data is None or not uri:
        raise ExportError(
            f"{version.ref} was not trained on a table, so there are no held-out rows to compare on",
            allowed="a model trained on a table, or --data FILE",
            got=uri or "no data",
            fix="give rows with --data FILE",
        )
    dataset = load_dataset(spec, table=read_source(uri, columns=None if spec.data.header else spec.data.columns))
    return dataset.split().test[dataset.features]


def _per_row_ms(model: GravityModel, frame: pd.DataFrame) -> dict[str, float]:
    """Latency per row: in one batch of the held-out rows, and one row at a time."""
    batch = pd.concat([frame] * max(1, -(-1000 // len(frame))), ignore_index=True)
    model.predict(batch.head(8))  # warm-up: first calls allocate
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        model.predict(batch)
        best = min(best, time.perf_counter() - start)
    singles = [frame.iloc[[i % len(frame)]] for i in range(50)]
    start = time.perf_counter()
    for row in singles:
        model.predict(row)
    single = (time.perf_counter() - start) / len(singles)
    return {"batch_ms_per_row": 1000 * best / len(batch), "single_row_ms": 1000 * single}


def parity_report(native: GravityModel, exported: OnnxModel, frame: pd.DataFrame) -> dict[str, Any]:
    """How closely ``exported`` follows ``native`` on ``frame``: differences and agreement."""
    report: dict[str, Any] = {"rows": len(frame), "kind": native.kind}
    if native.kind in ("classifier", "clusterer"):
        a = native.predict_proba(frame).to_numpy(dtype=np.float64)
        b = exported.predict_proba(frame).to_numpy(dtype=np.float64)
        report["max_abs_diff"] = float(np.max(np.abs(a - b)))
        report["mean_abs_diff"] = float(np.mean(np.abs(a - b)))
        report["label_agreement"] = float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
    elif native.kind == "reducer":
        a_frame, b_frame = native.predict(frame), exported.predict(frame)
        columns = [c for c in a_frame.columns if c.startswith("component_")]
        a, b = a_frame[columns].to_numpy(dtype=np.float64), b_frame[columns].to_numpy(dtype=np.float64)
        report["max_abs_diff"] = float(np.max(np.abs(a - b)))
        report["mean_abs_diff"] = float(np.mean(np.abs(a - b)))
        report["confidence_max_abs_diff"] = float(np.max(np.abs(a_frame["confidence"] - b_frame["confidence"])))
    else:
        column = "score" if native.kind == "anomaly_detector" else "prediction"
        a_frame, b_frame = native.predict(frame), exported.predict(frame)
        a, b = a_frame[column].to_numpy(dtype=np.float64), b_frame[column].to_numpy(dtype=np.float64)
        spread = float(np.std(a)) or 1.0
        report["max_abs_diff"] = float(np.max(np.abs(a - b)))
        report["mean_abs_diff"] = float(np.mean(np.abs(a - b)))
        report["max_diff_relative_to_std"] = report["max_abs_diff"] / spread
        if native.kind == "anomaly_detector":
            # Both sides flag against the threshold saved at training.
            report["threshold"] = float(native.meta["threshold"])
            report["flag_agreement"] = float(np.mean(a_frame["is_anomaly"].to_numpy() == b_frame["is_anomaly"].to_numpy()))
    return report


def _check(report: dict[str, Any], min_agreement: float, max_diff: float, quantized: bool = True,
           exported: str = "ONNX") -> None:
    drop = "export without --quantize, or " if quantized else ""
    for key, what in (("label_agreement", "labels"), ("flag_agreement", "anomaly flags")):
        if key not in report or report[key] >= min_agreement:
            continue
        raise ExportError(
            f"the {exported} model agrees with the original on {report[key]:.2%} of "
            f"{report['rows']} held-out {what}",
            allowed=f">= {min_agreement:.2%}",
            got=f"{report[key]:.4f}",
            fix=f"{drop}lower --min-agreement if the loss is acceptable",
        )
    diff = report.get("max_diff_relative_to_std", report["max_abs_diff"])
    if diff > max_diff:
        what = "of the standard deviation of predictions" if "max_diff_relative_to_std" in report else ""
        raise ExportError(
            f"the {exported} model's outputs differ from the original's by up to {diff:.4g} {what}".strip(),
            allowed=f"<= {max_diff}",
            got=f"{diff:.4g}",
            fix=f"{drop}raise --max-diff if the difference is acceptable",
        )


def _quantize_int8(source: Path, target: Path) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Dynamic quantization stores weights as int8 and quantizes activations per batch at run time:
    # no calibration data is needed (https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html).
    # It logs advice on the root logger ("consider pre-processing") that a user cannot act on.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        # Tensors behind ai.onnx.ml operators (the preprocessing of scikit-learn graphs) get no type
        # from shape inference; they are float32, and without this hint the quantizer stops.
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": TensorProto.FLOAT}
        )
    finally:
        root.setLevel(level)


def parity_rows(model: GravityModel, ref: str | Path, data: str | Path | None, workspace: Workspace) -> pd.DataFrame:
    """The rows an export is compared on: ``data``, else the job's held-out split (validated)."""
    if data is not None:
        rows = read_table(str(data), role="held-out rows").frame
    elif "name" in model.meta:
        rows = held_out_rows(model, str(ref), workspace)
    else:
        raise ExportError(
            "a model folder carries no record of its held-out rows",
            allowed="a registered model (NAME, NAME/VERSION), or --data FILE",
            got=str(ref),
            fix="give held-out rows with --data FILE",
        )
    return model.prepare(rows.head(MAX_HELD_OUT_ROWS))


def check_target(output: Path) -> None:
    """Refuse an ``-o`` folder that holds something other than an earlier export (it would be replaced)."""
    if output.exists() and any(output.iterdir()) and not (output / METADATA).exists():
        raise ExportError(
            f"{str(output)!r} exists and is not an earlier export",
            allowed="a new folder, an empty one, or an earlier export to replace",
            got=sorted(p.name for p in output.iterdir())[:10],
            fix="choose an empty or new folder with -o",
        )


def export_model(
    ref: str | Path,
    output: str | Path,
    *,
    quantize: Quantize | None = None,
    data: str | Path | None = None,
    min_agreement: float = MIN_AGREEMENT,
    max_diff: float = MAX_DIFF,
    workspace: Workspace | None = None,
    latency: bool = True,
) -> ExportReport:
    """Export model ``ref`` to the folder ``output`` (model.onnx, metadata.json, parity.json)."""
    if quantize not in (None, "int8"):
        raise ExportError("unknown quantization", allowed=["int8"], got=quantize, fix="use --quantize int8")
    output = Path(output)
    check_target(output)
    ws = workspace or Workspace.current()
    model = load(ref, workspace=ws)
    frame = parity_rows(model, ref, data, ws)

    staging = staging_dir(output)  # named for its writer: a killed export's folder is removed next time
    try:
        fp32 = staging / ("model.fp32.onnx" if quantize else ONNX_FILE)
        try:
            graph = model.export_onnx(fp32, frame.head(64))
        except GravityMLError as exc:
            extra = {"allowed": exc.allowed} if exc.allowed is not None else {}
            raise ExportError(exc.what, got=exc.got, fix=exc.fix, **extra) from None
        if quantize:
            _quantize_int8(fp32, staging / ONNX_FILE)
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": {
                "ref": model.meta.get("ref", str(ref)),
                "name": model.meta.get("name"),
                "version": model.meta.get("version"),
                "flavor": model.flavor,
                "kind": model.kind,
            },
            "file": ONNX_FILE,
            "quantized": quantize,
            **unified_graph(model, graph, frame),
            # Clusterers give their own map (column -> cluster id); classes are the classifier's.
            "label_map": graph.get("label_map") or {str(i): c for i, c in enumerate(model.classes or [])},
            "schema": model.schema.to_dict(),
            "meta": {k: v for k, v in model.meta.items() if k in KEPT_META},
        }
        (staging / METADATA).write_text(json.dumps(metadata, indent=2, default=str), encoding="utf-8")
        exported = OnnxModel(staging, encode=getattr(model, "encode", None))
        report = parity_report(model, exported, frame)
        report["thresholds"] = {"min_agreement": min_agreement, "max_diff": max_diff}
        report["size_bytes"] = {"onnx": (staging / ONNX_FILE).stat().st_size}
        if quantize:
            report["size_bytes"]["onnx_fp32"] = fp32.stat().st_size
            report["size_ratio_fp32_to_int8"] = fp32.stat().st_size / (staging / ONNX_FILE).stat().st_size
        if latency:  # the parity report's timings (seconds per export); off where only the graph matters
            report["latency"] = {"native": _per_row_ms(model, frame), "onnx": _per_row_ms(exported, frame)}
        _check(report, min_agreement, max_diff, quantized=quantize is not None)
        if quantize:
            fp32.unlink()
        report["passed"] = True
        (staging / PARITY).write_text(json.dumps(report, indent=2), encoding="utf-8")
        publish_dir(staging, output)  # synced, umask permissions, swapped in whole
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(directory=output, model_file=output / ONNX_FILE, parity=report)


TFLITE_FILE = "model.tflite"


def export_tflite(
    ref: str | Path,
    output: str | Path,
    *,
    quantize: Quantize | None = None,
    data: str | Path | None = None,
    min_agreement: float = MIN_AGREEMENT,
    max_diff: float = MAX_DIFF,
    workspace: Workspace | None = None,
) -> ExportReport:
    """Export keras model ``ref`` to ``output`` as ``model.tflite`` (float32, or int8 calibrated on the
    training rows stored with the model), parity-checked with the TFLite interpreter like an ONNX export."""
    output = Path(output)
    check_target(output)
    ws = workspace or Workspace.current()
    model = load(ref, workspace=ws)
    convert = getattr(model, "export_tflite", None)
    if convert is None:
        raise ExportError(
            f"a {model.flavor} model cannot be exported to TensorFlow Lite",
            allowed=["keras (model.type: keras, or framework: tensorflow)"],
            got=model.flavor,
            fix="export it with --format onnx",
        )
    frame = parity_rows(model, ref, data, ws)
    staging = staging_dir(output)
    try:
        graph = convert(staging / TFLITE_FILE, frame.head(256), quantize=quantize)
        metadata = {
            "format": "gravityml-tflite",
            "format_version": FORMAT_VERSION,
            "model": {"ref": model.meta.get("ref", str(ref)), "name": model.meta.get("name"),
                      "version": model.meta.get("version"), "flavor": model.flavor, "kind": model.kind},
            "file": TFLITE_FILE,
            "quantized": quantize,
            "calibration": graph.get("calibration"),
            **unified_graph(model, graph, frame),
            "label_map": {str(i): c for i, c in enumerate(model.classes or [])},
            "schema": model.schema.to_dict(),
            "meta": {k: v for k, v in model.meta.items() if k in KEPT_META},
        }
        (staging / METADATA).write_text(json.dumps(metadata, indent=2, default=str), encoding="utf-8")
        report = parity_report(model, model.tflite_predictor(staging / TFLITE_FILE), frame)  # type: ignore[attr-defined, arg-type]
        report["thresholds"] = {"min_agreement": min_agreement, "max_diff": max_diff}
        report["size_bytes"] = {"tflite": (staging / TFLITE_FILE).stat().st_size}
        _check(report, min_agreement, max_diff, quantized=quantize is not None, exported="TFLite")
        report["passed"] = True
        (staging / PARITY).write_text(json.dumps(report, indent=2), encoding="utf-8")
        publish_dir(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(directory=output, model_file=output / TFLITE_FILE, parity=report)
