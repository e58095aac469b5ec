"""Run a job: locally here, or on a site's Ray cluster (layer 4)."""

from gravityml.execution._local import JobResult, TeeSink, run_job, spec_digest

__all__ = ["JobResult", "TeeSink", "run_job", "spec_digest"]
