"""The placed job: what an executor is handed, and all it needs to run the job without planning it again.

A :class:`PlacedJob` is a plain value (JSON both ways), so the same object runs here
(:class:`~gravityml.execution.LocalExecutor`) and travels in a Ray job's runtime environment to a
site's cluster (:class:`~gravityml.execution.RayExecutor`), where ``python -m
gravityml.execution._remote`` reads it back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gravityml.spec import JobSpec, parse_spec
from gravityml.tracking import Workspace

#: The environment variable that carries a placed job (JSON) to the site that runs it.
JOB_ENV = "GRAVITYML_PLACED_JOB"
def gravityml_version() -> str:
    """The installed gravityml's version (not ``gravityml.__version__``: this layer may not import the root)."""
    from importlib import metadata

    try:
        return metadata.version("gravityml")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without an install
        return "0.0.0+unknown"


#: The folder of the gravityml package, shipped to a site's cluster with the job.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: The home store's keys of a data move travel to the destination job as ``GRAVITYML_SOURCE_AWS_ACCESS_KEY_ID``...
SOURCE_KEY_PREFIX = "GRAVITYML_SOURCE_"
#: A line the remote side prints when the job is registered: the JobResult as JSON follows it.
RESULT_MARK = "GRAVITYML_RESULT "


def spec_digest(spec: JobSpec) -> str:
    """A stable hash of what the spec asks for (used to key checkpoints).

    ``placement`` is left out: where a job runs and what it may cost do not change what it computes,
    and a run stopped for budget must resume from its checkpoint once the budget is raised.
    """
    canonical = json.dumps(spec.model_dump(mode="json", exclude={"placement"}), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class PlacedJob:
    """A validated spec with the enforced choice of where it runs and what it may spend.

    ``plan`` is what the planner decided (planned site, offer, market, forecast); where the work
    actually ran is added by the executor that runs it, never taken from here.
    """

    spec: dict[str, Any]
    base_dir: str
    site: str
    jurisdiction: str
    offer: str
    hourly_usd: float
    nodes: int
    egress_usd: float
    forecast_usd: float
    experiment: str
    budget_usd: float | None
    plan: dict[str, str] = field(default_factory=dict)
    tracking_uri: str | None = None
    artifact_location: str | None = None
    #: Data that the plan moves here from its home site: (home site, size in GB).
    moves_from: str | None = None
    moved_gb: float = 0.0
    #: The home site's store (endpoint, region: never a key) when the plan moves the data.
    source_store: dict[str, str] = field(default_factory=dict)
    #: The *names* of the variables that hold the home store's keys (AWS_ACCESS_KEY_ID -> its variable).
    source_key_env: dict[str, str] = field(default_factory=dict)
    #: What the job asks of a cluster, from the plan: CPUs, GPUs, memory (None: not asked).
    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float | None = None

    def load_spec(self) -> JobSpec:
        return parse_spec(self.spec, base_dir=Path(self.base_dir))

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def mlflow_experiment(self) -> str:
        """Runs whose models are kept in a site's own store live in an experiment with that location."""
        return self.experiment if self.artifact_location is None else f"{self.experiment}@{self.site}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PlacedJob:
        return cls(**json.loads(text))


def ensure_experiment(workspace: Workspace, job: PlacedJob) -> str:
    """The id of the job's MLflow experiment; one kept in a site's store is created with that location."""
    if job.artifact_location is None:
        return workspace.experiment_id(job.mlflow_experiment)
    client = workspace.client
    found = client.get_experiment_by_name(job.mlflow_experiment)
    if found is not None:
        return str(found.experiment_id)
    location = job.artifact_location.rstrip("/") + f"/{job.experiment}"
    return str(client.create_experiment(job.mlflow_experiment, artifact_location=location))
