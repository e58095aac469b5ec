"""Commands load only what they use: no torch for help, validate, plan, models list or a scikit-learn job.

Each command runs in a fresh interpreter (the test process has torch loaded already) and reports
which heavy packages it imported. This checks behaviour, not speed: ``benchmarks/startup.py`` times them.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

_RUN = """
import json, sys
from gravityml.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
heavy = ("torch", "mlflow", "sklearn", "matplotlib", "stable_baselines3", "ray", "tensorflow")
print("MODULES " + json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def _command(home: Path, *args: str) -> dict[str, object]:
    env = {**os.environ, "GRAVITYML_HOME": str(home), "MPLBACKEND": "Agg"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *args], capture_output=True, text=True, env=env, cwd=home.parent, timeout=300
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("MODULES ")), None)
    assert line is not None, done.stderr
    report: dict[str, object] = json.loads(line.removeprefix("MODULES "))
    assert report["code"] == 0, done.stderr
    return report


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lazy")
    sk = {
        "name": "lazy-iris",
        "task": "supervised",
        "data": {"source": "sklearn:iris", "target": "target", "split": {"test": 0.3, "seed": 1}},
        "model": {"type": "logistic_regression", "params": {"max_iter": 200}},
        "compute": {"accelerator": "auto"},
    }
    net = {**sk, "name": "lazy-mlp", "model": {"type": "mlp", "params": {"hidden": [8]}}, "train": {"epochs": 1}}
    out = {"sklearn": root / "iris.yaml", "mlp": root / "mlp.yaml", "home": root / "ws"}
    out["sklearn"].write_text(yaml.safe_dump(sk))
    out["mlp"].write_text(yaml.safe_dump(net))
    return out


def test_help_and_validate_load_no_torch_no_mlflow(specs: dict[str, Path]) -> None:
    home = specs["home"]
    for args in (["--help"], ["train", "--help"], ["validate", str(specs["sklearn"])], ["validate", str(specs["mlp"])]):
        loaded = _command(home, *args)["loaded"]
        assert "torch" not in loaded and "mlflow" not in loaded, (args, loaded)


def test_a_scikit_learn_job_trains_lists_and_plans_without_torch(specs: dict[str, Path]) -> None:
    home = specs["home"]
    train = _command(home, "train", str(specs["sklearn"]))["loaded"]
    assert "torch" not in train and "sklearn" in train and "mlflow" in train, train
    for args in (["models", "list"], ["plan", str(specs["sklearn"])]):
        loaded = _command(home, *args)["loaded"]
        assert "torch" not in loaded and "stable_baselines3" not in loaded, (args, loaded)
    assert "mlflow" not in _command(home, "plan", str(specs["sklearn"]))["loaded"]


def test_torch_free_net_signatures_match_the_networks() -> None:
    """The spec checks mlp/cnn/text params against signatures kept beside the networks."""
    from gravityml.models import _net_params, _nets

    for name in ("MLP", "CNN", "TextNet"):
        theirs = inspect.signature(getattr(_nets, name).__init__).parameters
        ours = inspect.signature(getattr(_net_params, name)).parameters
        assert [p for p in theirs if p != "self"] == list(ours), name
    assert _nets.DEFAULTS is _net_params.DEFAULTS
