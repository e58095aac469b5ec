"""`compute.workers` asks for Ray Train on a Ray site's cluster: off a cluster it is refused with the fix.

The training itself is tested on a real two-node cluster in tests/scale/cluster/test_ray_train.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


def test_workers_on_no_cluster_are_refused_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gravityml.data import local_catalog
    from gravityml.errors import TrainingError
    from gravityml.execution import run_job
    from gravityml.tracking import Workspace

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = {
        "name": "digits-no-cluster", "task": "supervised",
        "data": {"source": "sklearn:digits", "target": "target"},
        "model": {"type": "mlp", "params": {"hidden": [16]}},
        "train": {"epochs": 1}, "compute": {"accelerator": "cpu", "workers": 2},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    ws = Workspace.current(tmp_path / "ws")
    with pytest.raises(TrainingError, match="trains on a Ray site's cluster") as caught:
        run_job(path, workspace=ws, catalog=local_catalog())
    assert "compute.workers: 1" in caught.value.message
    assert not ws.client.search_registered_models()  # nothing registered
