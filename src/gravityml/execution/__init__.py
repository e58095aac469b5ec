"""Run a job: locally here, or on a site's Ray cluster (layer 4)."""

from gravityml.execution._local import JobResult, TeeSink, run_job, spec_digest
from gravityml.execution._placement import Placed, calibrate, enforce, plan_job

__all__ = ["JobResult", "Placed", "TeeSink", "calibrate", "enforce", "plan_job", "run_job", "spec_digest"]
