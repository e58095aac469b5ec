"""`gravityml export --format web` opened in a real headless Chromium: the page fills its form with
held-out rows, runs the model with onnxruntime-web (wasm) and shows what ``gravityml.load().predict``
gives for the same rows.

Debian's ``chromium`` and ``chromium-driver`` (``make browser`` installs them) are driven by Selenium
through /usr/bin/chromedriver, so Selenium Manager never runs (it would download a driver). The page
is served from 127.0.0.1 by ``http.server``; every resource it loads is checked to come from there.
A screenshot of the page after the last row is kept: in $GRAVITYML_TEST_ARTEFACTS when set, else
beside the export in pytest's temporary folder.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from tests.inference.conftest import workspace_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WEB = Path(__file__).resolve().parents[2] / "src" / "gravityml" / "inference" / "web"
#: The page prints confidences with toFixed(6); float32 (browser) against float64 (scikit-learn).
CONFIDENCE_TOL = 1e-4

# One script run in the page: fill the form with each row, press Predict, wait for that run to end
# (body[data-runs] counts them), read what the page shows. One round trip for all rows.
RUN_ROWS = """
const [rows, done] = [arguments[0], arguments[arguments.length - 1]];
const shown = [];
(async () => {
  for (const row of rows) {
    const before = Number(document.body.dataset.runs || 0);
    for (const [name, value] of Object.entries(row)) {
      const input = document.getElementById("feature-" + name);
      if (!input) throw new Error("no form field for column " + name);
      input.value = value;
    }
    document.getElementById("predict").click();
    while (Number(document.body.dataset.runs || 0) === before) await new Promise((r) => setTimeout(r, 5));
    shown.push({
      prediction: document.getElementById("prediction").textContent,
      confidence: document.getElementById("confidence").textContent,
      status: document.getElementById("status").textContent,
    });
  }
  return shown;
})().then((s) => done({ok: s}), (e) => done({error: String(e)}));
"""


def _cli(*args: str) -> int:
    """``gravityml ARGS`` in-process: its exit code."""
    from gravityml.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _handler(directory: Path) -> type[http.server.SimpleHTTPRequestHandler]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        # The wasm loader and its .mjs glue need these types (streaming compile, module import).
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript"}

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return functools.partial(Quiet, directory=str(directory))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def exported(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``gravityml export iris --format web -o DIR``, run in-process like a user would type it."""
    target = tmp_path_factory.mktemp("web-export") / "iris-web"
    with workspace_env(trained):
        assert _cli("export", "iris", "--format", "web", "-o", str(target)) == 0
    return target


@pytest.fixture(scope="module")
def site(exported: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(exported))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), "run `make browser` (Debian chromium + chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=900,700",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _held_out(trained: Path) -> pd.DataFrame:
    """The job's held-out split (what the export's own parity check used), as the page's form takes it."""
    import gravityml
    from gravityml.inference._export import parity_rows
    from gravityml.tracking import Workspace

    with workspace_env(trained):
        model = gravityml.load("iris")
        return parity_rows(model, "iris", None, Workspace.current(trained))


def test_page_in_chromium_shows_what_predict_gives(trained: Path, exported: Path, site: str, browser) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    import gravityml

    rows = _held_out(trained)
    with workspace_env(trained):
        expected = gravityml.load("iris").predict(rows)
    assert len(rows) >= 30 and expected["prediction"].nunique() == 3  # a constant page could not pass

    browser.get(site)
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.body.dataset.ready"))
    status = browser.find_element("id", "status").text
    assert browser.execute_script("return document.body.dataset.ready") == "1", status

    # The form is the model's schema: one field per training column, nothing else.
    fields = browser.execute_script("return Array.from(document.querySelectorAll('#form [name]'), e => e.name)")
    assert fields == list(rows.columns)

    payload = [{c: repr(float(v)) for c, v in row.items()} for row in rows.to_dict(orient="records")]
    result = browser.execute_async_script(RUN_ROWS, payload)
    shot = Path(os.environ.get("GRAVITYML_TEST_ARTEFACTS") or exported.parent) / "web-page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot))  # before the checks: a failing run keeps what the page showed
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "error" not in result, result.get("error")
    shown = pd.DataFrame(result["ok"])
    version = json.loads((WEB / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    assert (shown["status"] == f"ran in the browser (onnxruntime-web {version})").all(), shown["status"].unique()

    assert shown["prediction"].tolist() == expected["prediction"].astype(str).tolist()
    diff = (shown["confidence"].astype(float) - expected["confidence"].to_numpy(dtype=float)).abs()
    assert diff.max() <= CONFIDENCE_TOL, f"page confidence off by up to {diff.max():.3g}"

    # Offline: everything the page loaded came from the folder's own server.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert {"vendor/ort.wasm.min.js", "vendor/ort-wasm-simd-threaded.wasm", "model.onnx"} <= {
        u.removeprefix(site) for u in loaded
    }
    assert all(u.startswith(site) for u in loaded), [u for u in loaded if not u.startswith(site)]



@pytest.mark.parametrize(("args", "message"), [
    (["--format", "coreml"], r"--format: unknown export format; allowed: ['onnx', 'web', 'ort', 'tflite']; got: 'coreml'"),
    (["--format", "web", "--quantize", "int8"], r"--quantize: applies to --format onnx and tflite, not --format web"),
])
def test_export_format_refused_up_front(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("export", "no-such-model", *args) == 2
    assert message in capsys.readouterr().err


def test_ort_export_runs_in_onnxruntime_as_predict_does(trained: Path, tmp_path: Path) -> None:
    """``--format ort``: model.ort, read by a bare onnxruntime session (no gravityml), gives predict's labels."""
    import numpy as np
    import onnxruntime as ort

    import gravityml

    target = tmp_path / "iris-ort"
    with workspace_env(trained):
        assert _cli("export", "iris", "--format", "ort", "-o", str(target)) == 0
        rows = _held_out(trained)
        expected = gravityml.load("iris").predict(rows)
    assert sorted(p.name for p in target.iterdir()) == ["metadata.json", "model.onnx", "model.ort", "parity.json"]
    parity = json.loads((target / "parity.json").read_text())
    assert parity["passed"] and parity["label_agreement"] == 1.0 and parity["size_bytes"]["ort"] > 0

    meta = json.loads((target / "metadata.json").read_text())
    session = ort.InferenceSession(str(target / "model.ort"), providers=["CPUExecutionProvider"])
    feeds = {spec["name"]: rows[spec["columns"]].to_numpy(dtype=np.float32) for spec in meta["inputs"]}
    names = [o.name for o in session.get_outputs()]
    proba = session.run(None, feeds)[names.index(meta["outputs"]["probabilities"])]
    labels = [meta["label_map"][str(i)] for i in np.argmax(proba, axis=1)]
    assert labels == expected["prediction"].astype(str).tolist()
    assert np.abs(proba.max(axis=1) - expected["confidence"].to_numpy(dtype=float)).max() <= CONFIDENCE_TOL
