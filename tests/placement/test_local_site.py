"""The local site stands for this machine: it takes a job when this machine has what the job asks."""

from __future__ import annotations

import os

import pytest

from gravityml.compute import available_accelerators
from gravityml.execution._placement import plan_job


def job(**compute: object) -> dict:
    return {
        "name": "here",
        "task": "supervised",
        "data": {"source": "sklearn:iris", "target": "target"},
        "model": {"type": "mlp"},
        "compute": compute,
    }


@pytest.mark.parametrize("devices", [1, 2])
def test_cpu_worker_processes_up_to_the_core_count_run_here(workspace, devices: int) -> None:
    if devices > (os.cpu_count() or 1):
        pytest.skip("this machine has a single core")
    plan = plan_job(job(accelerator="cpu", devices=devices), workspace=workspace, measure=False)
    assert plan.chosen is not None and plan.chosen.site == "local"


def test_more_processes_than_cores_are_refused_with_the_rule(workspace) -> None:
    plan = plan_job(job(accelerator="cpu", devices=(os.cpu_count() or 1) + 1), workspace=workspace, measure=False)
    assert plan.chosen is None
    assert "need more nodes than the offer has" in " ".join(plan.reasons)


def test_a_cuda_job_runs_here_only_where_this_machine_has_a_gpu(workspace) -> None:
    plan = plan_job(job(accelerator="cuda"), workspace=workspace, measure=False)
    if "cuda" in available_accelerators():
        assert plan.chosen is not None and plan.chosen.site == "local"
    else:
        assert plan.chosen is None
        assert "compute.accelerator: cuda" in " ".join(plan.reasons)
