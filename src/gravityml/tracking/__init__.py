"""MLflow runs, the model registry and lineage (layer 2). Only this package imports MLflow."""

from gravityml.tracking._registry import (
    LINEAGE_PREFIX,
    ModelRef,
    ModelVersion,
    download,
    finished_run,
    list_models,
    promote,
    register,
    resolve,
    run_metrics,
    version_of_run,
    versions,
)
from gravityml.tracking._runs import TrackedRun, flatten, package_versions, start_run
from gravityml.tracking._workspace import HOME_ENV, Workspace

__all__ = [
    "HOME_ENV",
    "LINEAGE_PREFIX",
    "ModelRef",
    "ModelVersion",
    "TrackedRun",
    "Workspace",
    "download",
    "finished_run",
    "flatten",
    "list_models",
    "package_versions",
    "promote",
    "register",
    "resolve",
    "run_metrics",
    "start_run",
    "version_of_run",
    "versions",
]
