"""Place a job and run it with its site's executor: this machine, or a site's Ray cluster (layer 4)."""

from gravityml.execution._executor import Executor, executor_for, run_job, workspace_for
from gravityml.execution._job import PlacedJob, spec_digest
from gravityml.execution._local import JobResult, LocalExecutor, TeeSink, run_placed
from gravityml.execution._placement import Placed, calibrate, enforce, place, plan_job
from gravityml.execution._ray import RayExecutor

__all__ = [
    "Executor",
    "JobResult",
    "LocalExecutor",
    "Placed",
    "PlacedJob",
    "RayExecutor",
    "TeeSink",
    "calibrate",
    "enforce",
    "executor_for",
    "place",
    "plan_job",
    "run_job",
    "run_placed",
    "spec_digest",
    "workspace_for",
]
