"""The job spec a version was trained from, as its run recorded it (``job.yaml``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from gravityml.errors import ModelError
from gravityml.tracking._registry import ModelRef, ModelVersion, resolve
from gravityml.tracking._workspace import Workspace


def recorded_spec(workspace: Workspace, ref: str | ModelRef | ModelVersion) -> dict[str, Any]:
    """The spec document the run behind ``ref`` logged as ``job.yaml``."""
    from mlflow.exceptions import MlflowException

    mv = ref if isinstance(ref, ModelVersion) else resolve(workspace, ref)
    with tempfile.TemporaryDirectory(prefix="spec-") as tmp:
        try:
            local = workspace.client.download_artifacts(mv.run_id, "job.yaml", tmp)
        except (MlflowException, OSError):
            local = ""
        if not local or not Path(local).exists():
            raise ModelError(
                f"model {mv.ref}: its run {mv.run_id or '(none)'} recorded no job spec (job.yaml)",
                allowed="a version trained by `gravityml train`",
                got=mv.source,
                fix="train the model again from its spec with `gravityml train JOB.yaml`",
            )
        document = yaml.safe_load(Path(local).read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ModelError(f"model {mv.ref}: its recorded job.yaml is not a mapping", got=type(document).__name__,
                         fix="train the model again from its spec with `gravityml train JOB.yaml`")
    return document
