"""``gravityml export --format web|ort``: the ONNX export as a page that runs in a browser, or as an ORT file.

``web``: the ONNX export (model.onnx, metadata.json, parity.json) plus ``index.html``, ``app.js``
and ``vendor/`` (onnxruntime-web's wasm build, copied from the npm package that `make web` puts in
``inference/web/node_modules`` with ``npm ci`` from the committed lock file, and that a wheel
carries as package data), so the folder works offline served by any static file server.

``ort``: the ONNX export converted to ONNX Runtime's mobile format (``model.ort``) by
``python -m onnxruntime.tools.convert_onnx_models_to_ort``, checked for parity with the original
model on the same held-out rows as the ONNX export.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gravityml._files import publish_dir, staging_dir
from gravityml.errors import ExportError
from gravityml.inference._export import (
    MAX_DIFF,
    MIN_AGREEMENT,
    PARITY,
    ExportReport,
    _check,
    check_target,
    export_model,
    parity_report,
    parity_rows,
)
from gravityml.inference._load import load
from gravityml.inference._onnx import METADATA, ONNX_FILE, OnnxModel
from gravityml.tracking import Workspace

WEB = Path(__file__).with_name("web")
#: What the page loads from onnxruntime-web's dist folder: the wasm-only build and its runtime.
VENDOR_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "app.js")
ORT_FILE = "model.ort"


def vendor_dir() -> Path:
    """onnxruntime-web's dist folder, as `make web` (npm ci) leaves it."""
    dist = WEB / "node_modules" / "onnxruntime-web" / "dist"
    missing = [name for name in VENDOR_FILES if not (dist / name).is_file()]
    if missing:
        raise ExportError(
            "onnxruntime-web is not installed, so the page cannot be bundled",
            allowed=f"{dist}/ holding {', '.join(VENDOR_FILES)}",
            got=f"missing {', '.join(missing)}",
            fix=f"run `make web` (or `npm ci --ignore-scripts --prefix {WEB}`), or install a wheel built after it",
        )
    return dist


def _onnx_in(stage: Path, ref: str | Path, **options: Any) -> ExportReport:
    """The ONNX export built inside ``stage`` (its own parity check passed)."""
    return export_model(ref, stage / "export", **options)


def export_web(
    ref: str | Path,
    output: str | Path,
    *,
    data: str | Path | None = None,
    min_agreement: float = MIN_AGREEMENT,
    max_diff: float = MAX_DIFF,
    workspace: Workspace | None = None,
) -> ExportReport:
    """Export model ``ref`` to ``output`` as a static page that runs it with onnxruntime-web."""
    output = Path(output)
    check_target(output)
    dist = vendor_dir()  # before minutes of export: a missing install is said at once
    stage = staging_dir(output)
    try:
        report = _onnx_in(stage, ref, data=data, min_agreement=min_agreement, max_diff=max_diff,
                          workspace=workspace, latency=False)
        folder = report.directory
        metadata = json.loads((folder / METADATA).read_text(encoding="utf-8"))
        encoded = [spec["name"] for spec in metadata["inputs"] if not spec.get("columns")]
        if encoded:
            raise ExportError(
                "this model's graph takes encoded rows (one-hot / token ids made outside the graph), "
                "which a page cannot make",
                allowed="a model whose ONNX graph takes the raw columns (scikit-learn, or all-numeric torch)",
                got=encoded,
                fix="export it with --format onnx and encode rows in your own program",
            )
        for name in PAGE_FILES:
            shutil.copyfile(WEB / name, folder / name)
        (folder / "vendor").mkdir()
        for name in VENDOR_FILES:
            shutil.copyfile(dist / name, folder / "vendor" / name)
        publish_dir(folder, output)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportReport(directory=output, model_file=output / ONNX_FILE, parity=report.parity)


class OrtModel(OnnxModel):
    """An export folder whose session runs ``model.ort`` (the metadata is the ONNX export's)."""

    flavor = "ort"

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

        super().__init__(path)
        self.session = ort.InferenceSession(str(Path(path) / ORT_FILE), providers=["CPUExecutionProvider"])


def _convert_to_ort(folder: Path) -> None:
    command = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(folder / ONNX_FILE),
               "--output_dir", str(folder), "--optimization_style", "Fixed"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (folder / ORT_FILE).is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ExportError(
            "onnxruntime could not convert the ONNX graph to the ORT format",
            allowed="a graph whose operators onnxruntime supports",
            got=tail[0],
            fix="export with --format onnx instead",
        )
    for extra in folder.glob("*.required_operators*.config"):  # the converter's build hints, not the model
        extra.unlink()


def export_ort(
    ref: str | Path,
    output: str | Path,
    *,
    data: str | Path | None = None,
    min_agreement: float = MIN_AGREEMENT,
    max_diff: float = MAX_DIFF,
    workspace: Workspace | None = None,
) -> ExportReport:
    """Export model ``ref`` to ``output`` as ``model.ort`` (+ the ONNX export), parity-checked."""
    output = Path(output)
    check_target(output)
    ws = workspace or Workspace.current()
    stage = staging_dir(output)
    try:
        report = _onnx_in(stage, ref, data=data, min_agreement=min_agreement, max_diff=max_diff,
                          workspace=ws, latency=False)
        folder = report.directory
        _convert_to_ort(folder)
        native = load(ref, workspace=ws)
        parity = parity_report(native, OrtModel(folder), parity_rows(native, ref, data, ws))
        parity["thresholds"] = {"min_agreement": min_agreement, "max_diff": max_diff}
        parity["size_bytes"] = {"onnx": (folder / ONNX_FILE).stat().st_size, "ort": (folder / ORT_FILE).stat().st_size}
        _check(parity, min_agreement, max_diff, quantized=False)
        parity["passed"] = True
        parity["onnx"] = report.parity
        (folder / PARITY).write_text(json.dumps(parity, indent=2), encoding="utf-8")
        publish_dir(folder, output)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportReport(directory=output, model_file=output / ORT_FILE, parity=parity)
