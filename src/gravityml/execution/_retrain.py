"""Retrain a registered version from the spec its run recorded, on new or appended data.

The recorded spec (``job.yaml`` of the version's run) goes through the normal training path,
:func:`run_job`, so placement plans it where the new data lives under the same policies and
budgets. The new version is a *challenger*: no alias is moved; the gate decides
(``gravityml models promote NAME/N --if-better``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gravityml.data import resolve_path
from gravityml.execution import JobResult, run_job
from gravityml.spec import parse_spec
from gravityml.tracking import Workspace, resolve
from gravityml.tracking._recorded import recorded_spec


def retrain_spec(ref: str, *, data: str | Path | None = None, workspace: Workspace | None = None) -> dict[str, Any]:
    """The recorded spec of ``ref`` with ``data.source`` set to ``data`` (default: the recorded source)."""
    ws = workspace or Workspace.current()
    version = resolve(ws, ref)
    document = recorded_spec(ws, version)
    section = dict(document.get("data") or {})
    if data is not None:
        text = str(data)
        is_uri = text.startswith(("s3://", "sklearn:", "file://")) or ("/" not in text and ":" in text)
        section["source"] = text if is_uri else str(resolve_path(text, role="--data").resolve())
    elif section and version.lineage.get("data_uri"):
        # the recorded source may be relative to a spec folder we no longer know: use the resolved URI
        section["source"] = version.lineage["data_uri"]
    if section:
        document["data"] = section
    return document


def retrain(
    ref: str,
    *,
    data: str | Path | None = None,
    workspace: Workspace | None = None,
    site: str | None = None,
    catalog: Any = None,
) -> JobResult:
    """Train ``ref``'s recorded spec again (on ``data`` when given); returns the challenger version."""
    ws = workspace or Workspace.current()
    version = resolve(ws, ref)
    document = retrain_spec(ref, data=data, workspace=ws)
    spec = parse_spec(document)
    tags = {"retrained_from": version.ref, "lifecycle": "challenger"}
    return run_job(spec, workspace=ws, extra_tags=tags, site=site, catalog=catalog)
