"""The model registry: versions, aliases, references (``NAME``, ``NAME/3``, ``NAME@alias``), lineage."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gravityml._files import publish_dir, staging_dir
from gravityml.errors import ModelNotFoundError, SpecError
from gravityml.tracking._workspace import Workspace

_REF = re.compile(r"^(?:models:/)?(?P<name>[A-Za-z][A-Za-z0-9_.-]*)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))?$")
LINEAGE_PREFIX = "gravityml."


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        match = _REF.match(text.strip())
        if not match:
            raise SpecError(
                "model",
                f"{text!r} is not a model reference",
                allowed=["NAME", "NAME/VERSION", "NAME@ALIAS"],
                got=text,
                fix="write e.g. tumor, tumor/3 or tumor@production",
            )
        version = match.group("version")
        return cls(match.group("name"), int(version) if version else None, match.group("alias"))

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.alias:
            return f"{self.name}@{self.alias}"
        return self.name


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    run_id: str
    source: str
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    created_ms: int = 0
    description: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def lineage(self) -> dict[str, str]:
        return {k[len(LINEAGE_PREFIX):]: v for k, v in self.tags.items() if k.startswith(LINEAGE_PREFIX)}


def _version(mv: Any) -> ModelVersion:
    return ModelVersion(
        name=mv.name,
        version=int(mv.version),
        run_id=mv.run_id or "",
        source=mv.source,
        aliases=tuple(getattr(mv, "aliases", None) or ()),
        tags=dict(mv.tags or {}),
        created_ms=int(mv.creation_timestamp or 0),
        description=mv.description or "",
    )


def _names(workspace: Workspace) -> list[str]:
    return sorted(m.name for m in workspace.client.search_registered_models(max_results=1000))


def _not_found(workspace: Workspace, what: str, ref: ModelRef, allowed: Any) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model {str(ref)!r}: {what}",
        allowed=allowed,
        got=str(ref),
        fix="run `gravityml models list` to see what is registered (workspace: "
        f"{workspace.root})",
    )


def versions(workspace: Workspace, name: str) -> list[ModelVersion]:
    """Every version of ``name``, newest first (empty when the model does not exist)."""
    client = workspace.client
    found = client.search_model_versions(f"name = '{name}'", max_results=10_000)
    result = []
    for mv in found:
        # search results carry no aliases in every MLflow version: read each version whole.
        result.append(_version(client.get_model_version(mv.name, mv.version)))
    return sorted(result, key=lambda v: v.version, reverse=True)


def resolve(workspace: Workspace, ref: str | ModelRef) -> ModelVersion:
    """The registered version a reference names (latest for a bare name)."""
    from mlflow.exceptions import MlflowException

    ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
    client = workspace.client
    if ref.alias:
        try:
            return _version(client.get_model_version_by_alias(ref.name, ref.alias))
        except MlflowException:
            known = versions(workspace, ref.name)
            if not known:
                raise _not_found(workspace, "no such model", ref, _names(workspace)) from None
            aliases = sorted({a for v in known for a in v.aliases})
            raise _not_found(workspace, f"no alias {ref.alias!r}", ref, aliases) from None
    known = versions(workspace, ref.name)
    if not known:
        raise _not_found(workspace, "no such model", ref, _names(workspace))
    if ref.version is None:
        return known[0]
    for mv in known:
        if mv.version == ref.version:
            return mv
    raise _not_found(workspace, f"no version {ref.version}", ref, [v.ref for v in known])


def version_of_run(workspace: Workspace, run_id: str, name: str | None = None) -> ModelVersion | None:
    """The version that run ``run_id`` registered (of model ``name``, when given), if there is one."""
    client = workspace.client
    found = [mv for mv in client.search_model_versions(f"run_id = '{run_id}'") if name is None or mv.name == name]
    if not found:
        return None
    first = min(found, key=lambda mv: int(mv.version))
    return _version(client.get_model_version(first.name, first.version))


def finished_run(workspace: Workspace, run_id: str, name: str) -> ModelVersion | None:
    """The version run ``run_id`` registered, if it did: such a run is finished, whatever its status.

    A version is registered only once every artefact of its run is stored, so a run killed after
    that point lost nothing; it is marked FINISHED here (it may still say RUNNING or KILLED).
    """
    version = version_of_run(workspace, run_id, name)
    if version is not None:
        client = workspace.client
        if client.get_run(run_id).info.status != "FINISHED":
            client.set_terminated(run_id, status="FINISHED")
    return version


def register(
    workspace: Workspace,
    name: str,
    *,
    run_id: str,
    source: str,
    tags: Mapping[str, str] | None = None,
    description: str = "",
) -> ModelVersion:
    """A new version of ``name`` pointing at ``source`` (call only once every artefact is stored).

    Idempotent per run: when run ``run_id`` already registered a version of ``name`` (a resumed
    run, a retried call), that version is returned and no second one is made.
    """
    from mlflow.exceptions import MlflowException

    existing = version_of_run(workspace, run_id, name)
    if existing is not None:
        return existing
    client = workspace.client
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name)
        except MlflowException:  # created meanwhile by a command started at the same time
            client.get_registered_model(name)
    mv = client.create_model_version(
        name,
        source=source,
        run_id=run_id,
        tags={k: str(v) for k, v in (tags or {}).items()},
        description=description or None,
    )
    return _version(client.get_model_version(name, mv.version))


def promote(workspace: Workspace, ref: str | ModelRef, alias: str) -> ModelVersion:
    """Point ``alias`` (e.g. production) at the version ``ref`` names."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", alias) or alias.lower() == "latest" or re.fullmatch(r"v\d+", alias):
        raise SpecError(
            "alias",
            f"{alias!r} is not a usable alias",
            allowed="letters, digits, '_' and '-', starting with a letter; not 'latest' or 'v<N>'",
            got=alias,
            fix="choose a name such as production or staging",
        )
    mv = resolve(workspace, ref)
    _record_alias(workspace, mv.name, alias, mv.version)
    workspace.client.set_registered_model_alias(mv.name, alias, str(mv.version))
    return resolve(workspace, ModelRef(mv.name, alias=alias))


# ---- alias history and version tags (the champion/challenger gate and rollback) -------------------

ALIAS_HISTORY_PREFIX = f"{LINEAGE_PREFIX}alias_history."


def alias_history(workspace: Workspace, name: str, alias: str) -> list[int]:
    """The versions ``alias`` pointed at, oldest first (kept in a tag of the registered model)."""
    import json

    tags = dict(workspace.client.get_registered_model(name).tags or {})
    raw = tags.get(f"{ALIAS_HISTORY_PREFIX}{alias}")
    return [int(v) for v in json.loads(raw)] if raw else []


def _record_alias(workspace: Workspace, name: str, alias: str, version: int) -> None:
    import json

    from mlflow.exceptions import MlflowException

    history = alias_history(workspace, name, alias)
    if not history:  # aliases set before history was kept: start from what the alias names now
        try:
            history = [int(workspace.client.get_model_version_by_alias(name, alias).version)]
        except MlflowException:
            history = []
    if not history or history[-1] != version:
        history.append(version)
    workspace.client.set_registered_model_tag(name, f"{ALIAS_HISTORY_PREFIX}{alias}", json.dumps(history[-100:]))


def rollback(workspace: Workspace, ref: str | ModelRef) -> tuple[ModelVersion, ModelVersion]:
    """Point ``NAME@ALIAS`` back at the version it named before; returns (left, restored)."""
    import json

    from gravityml.errors import ModelError

    ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
    if not ref.alias:
        raise SpecError("model", f"{str(ref)!r} names no alias", allowed="NAME@ALIAS", got=str(ref),
                        fix="write e.g. tumor@production")
    current = resolve(workspace, ref)
    history = alias_history(workspace, ref.name, ref.alias)
    while history and history[-1] != current.version:
        history.pop()  # the alias was moved by hand (outside gravityml): trust where it points now
    if len(history) < 2:
        raise ModelError(
            f"{ref}: no earlier version to roll back to",
            allowed="an alias promoted at least twice",
            got=history or [current.version],
            fix=f"promote the version you want with `gravityml models promote NAME/N --alias {ref.alias}`",
        )
    history.pop()
    previous = resolve(workspace, ModelRef(ref.name, version=history[-1]))
    workspace.client.set_registered_model_alias(ref.name, ref.alias, str(previous.version))
    workspace.client.set_registered_model_tag(ref.name, f"{ALIAS_HISTORY_PREFIX}{ref.alias}", json.dumps(history))
    set_version_tags(workspace, current.ref, {f"lifecycle.rolled_back_from.{ref.alias}": str(previous.version)})
    return current, resolve(workspace, ref)


def set_version_tags(workspace: Workspace, ref: str | ModelRef, tags: Mapping[str, str]) -> ModelVersion:
    """Set tags on the version ``ref`` names (decisions and evidence about it)."""
    mv = resolve(workspace, ref)
    for key, value in tags.items():
        workspace.client.set_model_version_tag(mv.name, str(mv.version), key, str(value)[:5000])
    return resolve(workspace, ModelRef(mv.name, version=mv.version))


def list_models(workspace: Workspace) -> list[dict[str, Any]]:
    """One row per registered model: latest version, aliases, task and model type."""
    rows = []
    for name in _names(workspace):
        known = versions(workspace, name)
        if not known:
            continue
        latest = known[0]
        aliases = {a: v.version for v in known for a in v.aliases}
        rows.append(
            {
                "name": name,
                "versions": len(known),
                "latest": latest.version,
                "aliases": aliases,
                "task": latest.lineage.get("task", ""),
                "model_type": latest.lineage.get("model_type", ""),
                "updated_ms": latest.created_ms,
            }
        )
    return rows


def run_metrics(workspace: Workspace, run_id: str) -> dict[str, float]:
    return dict(workspace.client.get_run(run_id).data.metrics) if run_id else {}


def download(workspace: Workspace, ref: str | ModelRef) -> tuple[ModelVersion, Path]:
    """The version ``ref`` names and a local folder holding its model (cached in the workspace)."""
    mv = resolve(workspace, ref)
    target = workspace.cache_dir / "models" / mv.name / str(mv.version)
    if (target / "gravityml.json").exists():
        return mv, target
    from mlflow.artifacts import download_artifacts

    # Downloaded beside the cache entry under a name that records this process, then renamed whole:
    # a killed download leaves no half entry, and the next download removes what it left.
    staging = staging_dir(target)
    try:
        local = Path(download_artifacts(artifact_uri=mv.source, dst_path=str(staging), tracking_uri=workspace.tracking_uri))
        publish_dir(local, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return mv, target
