"""gravityml: train and serve machine-learning models where your data lives.

>>> import gravityml
>>> result = gravityml.train("examples/tumor.yaml")      # doctest: +SKIP
>>> model = gravityml.load("tumor@production")            # doctest: +SKIP
>>> model.predict(rows)                                   # doctest: +SKIP

Heavy parts (MLflow, torch, scikit-learn) load on first use, so ``import gravityml`` is quick.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gravityml.execution import JobResult
    from gravityml.models import GravityModel
    from gravityml.spec import JobSpec

try:
    __version__ = metadata.version("gravityml")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"


def train(spec: JobSpec | str | Path | dict[str, Any], *, resume: bool = False) -> JobResult:
    """Train a job (a YAML path, a mapping or a :class:`~gravityml.spec.JobSpec`) and register it."""
    from gravityml.execution import run_job

    return run_job(spec, resume=resume)


def load(ref: str | Path) -> GravityModel:
    """A registered model (``NAME``, ``NAME/3``, ``NAME@alias``) or a model folder, ready to predict."""
    from gravityml.inference import load as load_

    return load_(ref)


def load_spec(source: str | Path | dict[str, Any]) -> JobSpec:
    """Validate a job spec without running it."""
    from gravityml.spec import load_spec as load_spec_

    return load_spec_(source)


__all__ = ["__version__", "load", "load_spec", "train"]
