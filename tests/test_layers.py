"""The layering of DESIGN.md, checked by import-linter against the real package and a broken copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_contracts_hold() -> None:
    result = _lint(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _break(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """Lint a copy of the package in which ``module`` (a path under gravityml/) gained ``line``."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "gravityml", src / "gravityml", ignore=shutil.ignore_patterns("__pycache__"))
    target = src / "gravityml" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return _lint(tmp_path, src)


def test_a_lower_layer_importing_a_higher_one_breaks_the_build(tmp_path: Path) -> None:
    result = _break(tmp_path, "spec/_catalog.py", "import gravityml.tracking")
    assert result.returncode != 0
    assert "gravityml.spec._catalog -> gravityml.tracking" in result.stdout


def test_inference_importing_training_code_breaks_the_build(tmp_path: Path) -> None:
    result = _break(tmp_path, "inference/_load.py", "import gravityml.execution")
    assert result.returncode != 0
    assert "serving install carries no training code" in " ".join(result.stdout.split())
