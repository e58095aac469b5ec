"""Issue 10 (points 7, 8, 19): a user's mistake exits 2 with one four-part line, found before the work.

Each case goes through the real CLI entry point (``gravityml.cli.main``) as a user would type it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

FOUR_PARTS = re.compile(r"^error: .+; allowed: .+; got: .+\. To fix: .+$")


def assert_user_error(code: int, err: str, pattern: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err, err
    assert FOUR_PARTS.match(err.strip()), err
    assert re.search(pattern, err), err


def _spec(tmp_path: Path, name: str, **doc: object) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **doc}, sort_keys=False))
    return path


@pytest.fixture()
def blocker(tmp_path: Path) -> Path:
    """A plain file where a folder would have to be (a folder nobody can write, even root)."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


# ---- found before any work: none of these needs a model, a server or an export ------------------


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["serve", "m", "--port", "70000"], r"--port: is not a TCP port; allowed: '0-65535"),
        (["serve", "m", "--port", "-1"], r"--port: is not a TCP port"),
        (["serve", "m", "--port", "http"], r"--port: input should be a valid integer.*allowed: 'an integer'; got: 'http'"),
        (["serve", "m", "--max-batch-size", "0"], r"--max-batch-size: .*allowed: 'integers >= 1'; got: '0'"),
        (["serve", "m", "--bogus"], r"--bogus: gravityml serve has no such option.*; allowed: \[.*'--port'"),
        (["predict", "m"], r"INPUT: gravityml predict needs INPUT; allowed: 'text'; got: 'nothing'"),
        (["export", "m", "--min-agreement", "1.5"], r"--min-agreement: is a share of labels; allowed: '0.0-1.0'; got: 1.5"),
        (["export", "m", "--max-diff", "-1"], r"--max-diff: .*allowed: 'a number >= 0'; got: -1.0"),
        (["export", "m", "--quantize", "int4"], r"--quantize: unknown quantization; allowed: \['int8'\]; got: 'int4'"),
        (["export", "m", "-o", "{blocker}"], r"--output: '.*a-file' is a file; an export is a folder"),
        (["export", "m", "-o", "{blocker}/onnx"], r"folder '.*a-file' cannot be made: '.*a-file' is a file"),
        (["predict", "m", "{rows}", "-o", "{blocker}/out.csv"], r"output: folder '.*a-file' cannot be made"),
        (["predict", "m", "{rows}", "-o", "{tmp}"], r"output: cannot write"),
        (["nosuchcmd"], r"^error: gravityml: No such command 'nosuchcmd'; allowed: \[.*'train'.*\]; got: 'nosuchcmd'"),
        (["validate", "a.yaml", "b.yaml"], r"unexpected extra argument.*got: 'b.yaml'"),
        (["ui", "--port", "70000"], r"--port: is not a TCP port; allowed: '0-65535'; got: 70000"),
        (["rollout", "m", "--gif", "{blocker}/first.gif"], r"--gif: folder '.*a-file' cannot be made"),
        (["spec-schema", "-o", "{blocker}/schema.json"], r"--output: folder '.*a-file' cannot be made"),
    ],
)
def test_bad_values_are_refused_before_any_work(cli, tmp_path: Path, blocker: Path, args: list, pattern: str) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1,2\n")
    filled = [a.format(blocker=blocker, rows=rows, tmp=tmp_path) for a in args]
    started = time.monotonic()
    code, _, err = cli(*filled)
    assert_user_error(code, err, pattern)
    assert time.monotonic() - started < 30  # refused up front (an export or a serve would take longer)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("name: a\ntask: supervised\nname: b\n", r"key 'name' is given twice, at lines 1 and 3"),
        ("name: a\ntask: supervised\ndata: {source: sklearn:iris, target: target}\nmodel: {type: knn}\n"
         "train: {epochs: -1}\n", r"^error: train.epochs: must be >= 1; allowed: 'integers >= 1'; got: -1\. To fix: "),
        ("name: a\ntask: supervised\ndata: {source: x.csv, target: y, header: false}\nmodel: {type: knn}\n",
         r"data.columns: a CSV without a header row needs its column names"),
    ],
)
def test_spec_mistakes_are_refused_by_validate(cli, tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    code, _, err = cli("validate", str(path))
    assert_user_error(code, err, pattern)


# ---- found where the user's data or code enters -------------------------------------------------

GRID_BROKEN = "raise RuntimeError('boom at import')\n"
GRID_PICKY = '''import gymnasium as gym
import numpy as np


class Picky(gym.Env):
    def __init__(self, size: int = 3) -> None:
        if size < 2:
            raise ValueError(f"size must be >= 2, got {size}")
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
'''


def _rl(tmp_path: Path, env: dict) -> Path:
    return _spec(tmp_path, "rl", task="reinforcement", env=env, model={"type": "ppo"}, train={"timesteps": 64})


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("mlp_negative_hidden", r"^error: model.params: the mlp network cannot be built: .*negative dimension -4.*got: .*-4"),
        ("inf_in_training_data", r"data.source: '.*rows.csv': column 'x', row 3: inf is not a finite number"),
        ("repeated_column", r"the header row names 'x' more than once \(columns 1, 2\)"),
        ("entry_point_raises_on_import", r"env.entry_point: importing 'envs.broken' raised RuntimeError: boom at import \(.*broken.py, line 1\)"),
        ("registered_env_rejects_kwargs", r"environment 'CartPole-v1' rejected its kwargs: .*'bogus'.*got: \{'bogus': 5\}"),
        ("own_env_rejects_a_kwarg_value", r"making environment 'envs.picky:Picky' with env.kwargs \{'size': 1\} raised ValueError: size must be >= 2"),
    ],
)
def test_training_mistakes_are_user_errors(cli, tmp_path: Path, case: str, pattern: str) -> None:
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "broken.py").write_text(GRID_BROKEN)
    (tmp_path / "envs" / "picky.py").write_text(GRID_PICKY)
    data = {"source": "rows.csv", "target": "y"}
    if case == "mlp_negative_hidden":
        spec = _spec(tmp_path, "m", task="supervised", data={"source": "sklearn:iris", "target": "target"},
                     model={"type": "mlp", "params": {"hidden": [-4]}}, train={"epochs": 1})
    elif case == "inf_in_training_data":
        (tmp_path / "rows.csv").write_text("x,z,y\n" + "1,2,0\n3,4,1\ninf,5,0\n" * 4)
        spec = _spec(tmp_path, "m", task="supervised", data=data, model={"type": "logistic_regression"})
    elif case == "repeated_column":
        (tmp_path / "rows.csv").write_text("x,x,y\n" + "1,2,0\n3,4,1\n" * 4)
        spec = _spec(tmp_path, "m", task="supervised", data=data, model={"type": "logistic_regression"})
    elif case == "entry_point_raises_on_import":
        spec = _rl(tmp_path, {"entry_point": "envs.broken:Grid"})
    elif case == "registered_env_rejects_kwargs":
        spec = _rl(tmp_path, {"id": "CartPole-v1", "kwargs": {"bogus": 5}})
    else:
        spec = _rl(tmp_path, {"entry_point": "envs.picky:Picky", "kwargs": {"size": 1}})
    code, _, err = cli("train", str(spec))
    assert_user_error(code, err, pattern)
    assert "model.params" not in err or case == "mlp_negative_hidden"  # data problems are not blamed on params


def test_predict_refuses_infinity_and_repeated_columns(cli, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("x,z,y\n" + "1,2,0\n3,4,1\n" * 6)
    code, _, err = cli("train", str(_spec(tmp_path, "small", task="supervised", data={"source": "rows.csv", "target": "y"},
                                          model={"type": "logistic_regression"})))
    assert code == 0, err
    (tmp_path / "inf.csv").write_text("x,z\n1,2\n-inf,3\n")
    (tmp_path / "twice.csv").write_text("x,x\n1,2\n")
    code, _, err = cli("predict", "small", str(tmp_path / "inf.csv"), "-o", str(tmp_path / "out.csv"))
    assert_user_error(code, err, r"^error: input: '.*inf.csv': column 'x', row 2: -inf is not a finite number")
    code, _, err = cli("predict", "small", str(tmp_path / "twice.csv"), "-o", str(tmp_path / "out.csv"))
    assert_user_error(code, err, r"the header row names 'x' more than once")
    assert not (tmp_path / "out.csv").exists()


# ---- point 19: small gaps ----------------------------------------------------------------------


def test_headerless_csv_trains_and_whole_numbers_with_blanks_stay_integers(cli, tmp_path: Path) -> None:
    lines = [f"{i / 10},{'' if i % 5 == 0 else i % 7},{i % 2}" for i in range(40)]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")  # no header row
    spec = _spec(tmp_path, "nohead", task="supervised", model={"type": "logistic_regression"},
                 data={"source": "rows.csv", "target": "y", "header": False, "columns": ["x", "count", "y"]})
    code, out, err = cli("train", str(spec))
    assert code == 0, err
    (tmp_path / "new.csv").write_text("x,count\n0.5,3\n0.7,\n1.5,12\n")
    code, out, err = cli("predict", "nohead", str(tmp_path / "new.csv"), "-o", str(tmp_path / "scored.csv"))
    assert code == 0, err
    text = (tmp_path / "scored.csv").read_text().splitlines()
    assert text[0].startswith("x,count,prediction")
    assert text[1].startswith("0.5,3,") and text[2].startswith("0.7,,") and text[3].startswith("1.5,12,")
    assert str(pd.read_csv(tmp_path / "scored.csv", dtype_backend="numpy_nullable")["count"].dtype) == "Int64"


def test_models_list_keeps_long_names_and_show_shows_the_chosen_version(cli, tmp_path: Path) -> None:
    name = "a-model-with-a-rather-long-name-that-a-narrow-table-would-have-cut-short-v1"
    spec = _spec(tmp_path, name, task="supervised", data={"source": "sklearn:iris", "target": "target"},
                 model={"type": "logistic_regression"})
    for _ in range(2):
        code, _, err = cli("train", str(spec))
        assert code == 0, err
    code, out, _ = cli("models", "list")
    assert code == 0 and name in out and "…" not in out and "..." not in out
    code, out, _ = cli("models", "show", name)
    assert code == 0 and f"{name}/2" in out and f"{name}/1 " not in out
    assert f"other versions: v1; `gravityml models show {name} --all`" in out
    assert "precision" not in out  # a scikit-learn model has no precision to show
    code, out, _ = cli("models", "show", name, "--all")
    assert code == 0 and f"{name}/2" in out and f"{name}/1 " in out and "other versions" not in out
    code, out, _ = cli("models", "show", f"{name}/1")
    assert code == 0 and f"{name}/1 " in out and "other versions: v2" in out


def test_serve_on_a_port_in_use_is_refused_before_loading(cli) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = cli("serve", "no-such-model", "--port", str(port))
    assert_user_error(code, err, rf"^error: --port: cannot listen on 127.0.0.1:{port}: .*allowed: 'a free port'")
