"""Retrain from the recorded spec, the champion/challenger gate, rollback, and one lifecycle pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.lifecycle.conftest import spec, workspace_env

pytestmark = pytest.mark.xdist_group("lifecycle-gate")  # its tests share one workspace, in order


def test_retrain_gate_and_rollback(world: Path, tmp_path: Path, cli) -> None:
    """One workspace, in order (xdist may put separate tests of a module on different workers)."""
    _better(world, cli)
    _worse(world, tmp_path, cli)
    _rollback(world, cli)


def _better(world: Path, cli) -> None:
    from gravityml.tracking import Workspace, resolve
    from gravityml.tracking._recorded import recorded_spec

    with workspace_env(world / "ws"):
        code, out, err = cli("retrain", "credit@production", "--data", str(world / "new.csv"))
        assert code == 0, err
        assert "challenger credit/2 (retrained from credit/1, not promoted)" in out
        ws = Workspace.current()
        challenger = resolve(ws, "credit/2")
        assert challenger.lineage["retrained_from"] == "credit/1" and challenger.lineage["site"] == "local"
        assert challenger.lineage["data_uri"].endswith("new.csv")
        assert resolve(ws, "credit@production").version == 1  # retraining promotes nothing
        recorded = recorded_spec(ws, "credit/2")
        assert recorded["model"] == recorded_spec(ws, "credit/1")["model"]

        code, out, err = cli("models", "evaluate", "credit@production", "credit/2", "--data",
                             str(world / "holdout.csv"))
        assert code == 0, err
        assert "bootstrap interval" in out and "McNemar" in out and "ms/row" in out and "KiB" in out

        code, out, err = cli("models", "promote", "credit/2", "--alias", "production", "--if-better",
                             "--data", str(world / "holdout.csv"), "--margin", "0.01")
        assert code == 0, err
        assert "decision  promoted" in out
        assert resolve(ws, "credit@production").version == 2
        new, old = resolve(ws, "credit/2"), resolve(ws, "credit/1")
    assert new.tags["lifecycle.gate.decision"] == "promoted" and new.tags["lifecycle.gate.against"] == "credit/1"
    evidence = json.loads(new.tags["lifecycle.gate.evidence"])
    accuracy = evidence["metrics"]["accuracy"]
    assert accuracy["low"] > 0.01 and accuracy["challenger"] > accuracy["champion"]
    assert evidence["mcnemar"]["challenger_only_right"] > evidence["mcnemar"]["champion_only_right"]
    assert evidence["mcnemar"]["p_value"] < 0.05
    assert old.tags["lifecycle.gate.challenged_by.2"] == "promoted"


def _worse(world: Path, tmp_path: Path, cli) -> None:
    from gravityml.tracking import Workspace, resolve

    noisy = pd.read_csv(world / "new.csv")
    noisy["approved"] = np.random.default_rng(5).permutation(noisy["approved"].to_numpy())  # labels of nobody
    noisy.to_csv(tmp_path / "noisy.csv", index=False)
    with workspace_env(world / "ws"):
        code, out, err = cli("retrain", "credit@production", "--data", str(tmp_path / "noisy.csv"))
        assert code == 0, err
        assert "challenger credit/3 (retrained from credit/2, not promoted)" in out, out + err
        code, out, err = cli("models", "promote", "credit/3", "--alias", "production", "--if-better",
                             "--data", str(world / "holdout.csv"))
        assert code == 0, err
        assert "decision  refused" in out and "credit@production -> credit/2" in out
        ws = Workspace.current()
        assert resolve(ws, "credit@production").version == 2
        worse = resolve(ws, "credit/3")
        assert worse.tags["lifecycle.gate.decision"] == "refused"
        assert resolve(ws, "credit/2").tags["lifecycle.gate.challenged_by.3"] == "refused"
        # an equal challenger is refused too: no improvement beyond the margin
        from gravityml.inference._gate import decide, evaluate

        same = evaluate("credit/2", "credit/2", world / "holdout.csv")
        assert same.metric("accuracy").difference == 0 and not decide(same, "accuracy", 0.0)[0]


def _rollback(world: Path, cli) -> None:
    from gravityml.tracking import Workspace, resolve
    from gravityml.tracking._registry import alias_history

    with workspace_env(world / "ws"):
        ws = Workspace.current()
        assert alias_history(ws, "credit", "production") == [1, 2]
        code, out, err = cli("models", "rollback", "credit@production")
        assert code == 0, err
        assert "credit@production -> version 1 (was 2)" in out
        assert resolve(ws, "credit@production").version == 1
        assert alias_history(ws, "credit", "production") == [1]
        assert resolve(ws, "credit/2").tags["lifecycle.rolled_back_from.production"] == "1"
        code, _, err = cli("models", "rollback", "credit@production")
        assert code == 2 and "no earlier version to roll back to" in err
        code, _, err = cli("models", "rollback", "credit/2")
        assert code == 2 and "names no alias" in err
        code, _, err = cli("models", "promote", "credit/2", "--if-better")
        assert code == 2 and "--if-better needs labelled holdout rows" in err


def test_one_lifecycle_pass_retrains_and_promotes_then_a_second_changes_nothing(world: Path, cli) -> None:
    import gravityml
    from gravityml.tracking import Workspace, resolve

    pd.read_csv(world / "new.csv").drop(columns="approved").to_csv(world / "recent.csv", index=False)
    job = spec(world / "loop.yaml", world / "old.csv", name="loop",
               lifecycle={"recent": "recent.csv", "data": "new.csv", "holdout": "holdout.csv",
                          "promote": {"alias": "production", "margin": 0.01}})
    with workspace_env(world / "ws"):
        gravityml.train(job)
        code, out, err = cli("lifecycle", "run", "loop", "--spec", str(job))
        assert code == 0, err
        assert "no version held @production: loop/1 promoted" in out
        assert "drift:" in out and "loop/2 trained because of drift" in out
        assert "champion  loop/1 -> loop/2" in out
        ws = Workspace.current()
        assert resolve(ws, "loop@production").version == 2
        code, out, err = cli("lifecycle", "run", "loop", "--spec", str(job), "--json")
        assert code == 0, err
        outcome = json.loads(out)
        assert outcome["champion_before"] == outcome["champion_after"] == "loop/2"
        assert dict(outcome["decisions"])["retrain"] == "not needed"
        assert len(ws.client.search_model_versions("name = 'loop'")) == 2  # idempotent: nothing retrained
        run = ws.client.get_run(outcome["run_id"])
        assert run.data.tags["lifecycle.champion_after"] == "loop/2"
        assert any(k.startswith("lifecycle.step.") and k.endswith(".monitor") for k in run.data.tags)
