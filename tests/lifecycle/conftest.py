"""Fixtures for the lifecycle tests: synthetic loans whose world shifts, and a workspace with a champion."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.inference.conftest import workspace_env


def loans(rows: int, seed: int, *, shifted: bool = False) -> pd.DataFrame:
    """Applicants with two numbers and a region; ``shifted`` moves ``income`` up by two standard
    deviations, opens region ``west``, and moves the approval threshold with the incomes (the
    concept changes too, so a model trained on the old rows is wrong on many new ones)."""
    rng = np.random.default_rng(seed)
    income = rng.normal(2.0 if shifted else 0.0, 1.0, rows)
    debt = rng.normal(0.0, 1.0, rows)
    regions = ["north", "south", "east"] + (["west"] if shifted else [])
    region = rng.choice(regions, rows)
    threshold = 2.0 if shifted else 0.0
    score = income - threshold - 0.5 * debt + np.where(region == "south", 0.3, 0.0) + rng.normal(0, 0.3, rows)
    return pd.DataFrame({"income": income, "debt": debt, "region": region,
                         "approved": np.where(score > 0, "yes", "no")})


def spec(path: Path, source: Path, **extra: object) -> Path:
    document = {
        "name": "credit",
        "task": "supervised",
        "data": {"source": str(source), "target": "approved", "split": {"test": 0.25, "seed": 1}},
        "model": {"type": "logistic_regression"},
        "compute": {"accelerator": "cpu"},
        **extra,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, _empty_store: Path) -> Iterator[Path]:
    """A folder with old.csv (training), new.csv and holdout.csv (shifted), a spec, and a workspace
    ``ws/`` in which credit/1 was trained on old.csv and holds @production."""
    import gravityml
    from gravityml.tracking import Workspace, promote

    root = tmp_path_factory.mktemp("lifecycle")
    home = root / "ws"
    home.mkdir()
    shutil.copy(_empty_store, home / "mlflow.db")
    loans(600, 0).to_csv(root / "old.csv", index=False)
    loans(600, 1, shifted=True).to_csv(root / "new.csv", index=False)
    loans(400, 2, shifted=True).to_csv(root / "holdout.csv", index=False)
    job = spec(root / "credit.yaml", root / "old.csv")
    with workspace_env(home):
        gravityml.train(job)
        promote(Workspace.current(home), "credit/1", "production")
        yield root
