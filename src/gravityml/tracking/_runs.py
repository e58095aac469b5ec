"""MLflow runs as metric sinks, and the environment recorded with each."""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from gravityml._typing import Metrics, Params, PathLikeStr
from gravityml.errors import WorkspaceError
from gravityml.tracking._workspace import Workspace

MAX_PARAM_CHARS = 6000
PACKAGES = (
    "gravityml",
    "numpy",
    "pandas",
    "scikit-learn",
    "torch",
    "stable-baselines3",
    "gymnasium",
    "mlflow",
    "onnxruntime",
    "ray",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``, values as strings within MLflow's length limit."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            text = json.dumps(value, default=str) if not isinstance(value, str) else value
            out[name] = text[:MAX_PARAM_CHARS]
    return out


class TrackedRun:
    """An MLflow run that paradigms write to through the :class:`~gravityml._typing.MetricSink` API."""

    def __init__(self, workspace: Workspace, run_id: str) -> None:
        self.workspace = workspace
        self.run_id = run_id
        self._client = workspace.client

    @property
    def artifact_uri(self) -> str:
        return str(self._client.get_run(self.run_id).info.artifact_uri)

    def log_metrics(self, metrics: Metrics, step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [
            Metric(key, float(value), now, step or 0)
            for key, value in metrics.items()
            if value is not None
        ]
        for start in range(0, len(batch), 1000):
            self._client.log_batch(self.run_id, metrics=batch[start : start + 1000])

    def log_params(self, params: Params) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        for start in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[start : start + 100])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: PathLikeStr, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self._client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data: Any, name: str, artifact_path: str | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / name
            target.write_text(json.dumps(data, indent=2, default=str, sort_keys=True), encoding="utf-8")
            self.log_artifact(target, artifact_path)

    def log_text(self, text: str, name: str, artifact_path: str | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / name
            target.write_text(text, encoding="utf-8")
            self.log_artifact(target, artifact_path)

    def log_model(self, model_dir: Path, artifact_path: str = "model") -> str:
        """Log a gravityml model folder as an MLflow ``python_function`` model; returns its URI.

        Refused once the run has registered a version: a registered version's files never change.
        """
        from mlflow.models import Model

        from gravityml.tracking._registry import version_of_run

        registered = version_of_run(self.workspace, self.run_id)
        if registered is not None:
            raise WorkspaceError(
                f"run {self.run_id} already registered {registered.ref}; its model files are not written again",
                got=self.run_id,
                fix=f"train without --resume to make a new version, or use {registered.ref}",
            )

        mlmodel = Model(artifact_path=artifact_path, run_id=self.run_id)
        mlmodel.add_flavor(
            "python_function",
            loader_module="gravityml.models._pyfunc",
            data="gravityml.json",
            python_version=platform.python_version(),
            # A model's own code (models/_own.py stores it in code/): MLflow puts it on sys.path
            # before it imports the loader, as it does for ``code_paths``.
            **({"code": "code"} if (Path(model_dir) / "code").is_dir() else {}),
        )
        mlmodel.save(str(Path(model_dir) / "MLmodel"))
        self.log_artifact(model_dir, artifact_path)
        return f"{self.artifact_uri}/{artifact_path}"

    def metrics(self) -> dict[str, float]:
        return dict(self._client.get_run(self.run_id).data.metrics)


class Terminated(SystemExit):
    """Raised in the main thread when the process gets SIGTERM inside a run (exit code 143).

    A ``SystemExit`` so that it unwinds every ``finally`` (checkpoints stay, workers are stopped)
    and the CLI exits with the signal's conventional code, without a traceback.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


@contextmanager
def _terminate_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` (main thread only; else nothing)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def start_run(
    workspace: Workspace,
    experiment: str,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> Iterator[TrackedRun]:
    """A run that ends FINISHED, FAILED (re-raising) when the block raises, or KILLED when it is
    interrupted (Ctrl-C, or SIGTERM, which raises :class:`Terminated` inside the block).

    ``run_id`` re-opens an existing run (resuming after a crash) instead of creating one.
    """
    client = workspace.client
    if run_id is None:
        run = client.create_run(workspace.experiment_id(experiment), run_name=run_name, tags=dict(tags or {}))
        run_id = run.info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
    tracked = TrackedRun(workspace, run_id)
    with _terminate_raises():
        try:
            yield tracked
        except (KeyboardInterrupt, Terminated):
            client.set_terminated(run_id, status="KILLED")
            raise
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED")
