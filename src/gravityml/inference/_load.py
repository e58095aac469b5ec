"""Loading a model for inference: by registry reference or from a model folder."""

from __future__ import annotations

from pathlib import Path

from gravityml.models import MANIFEST, GravityModel, load_model
from gravityml.tracking import Workspace, download


def load(ref: str | Path, *, workspace: Workspace | None = None, paths: bool = True) -> GravityModel:
    """A model by reference (``tumor``, ``tumor/3``, ``tumor@production``) or folder path.

    ``model.meta["ref"]`` records the resolved ``NAME/VERSION`` of a registered model. With
    ``paths=False`` only the registry is asked (a request to a server never names a folder).
    """
    path = Path(ref)
    if paths and (path / MANIFEST).exists():
        model = load_model(path)
        model.meta.setdefault("ref", str(path))
        return model
    version, local = download(workspace or Workspace.current(), str(ref))
    model = load_model(local)
    model.meta["ref"] = version.ref
    model.meta["name"] = version.name
    model.meta["version"] = version.version
    return model
