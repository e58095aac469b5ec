"""Your own PyTorch network (``model.type: torch``): built by your factory, saved with your code.

``model.entry_point: "my_pkg.nets:build"`` names a factory called as
``build(inputs, outputs, **model.params)`` that returns an ``nn.Module``. :class:`Inputs` says what
the network receives and :class:`Outputs` what it must produce. The platform puts imputation and
normalisation in front of it (as it does for the built-in networks, so an ONNX graph takes raw
numbers) and, for images, reshapes the flat pixels to ``(N, C, H, W)``.

The package the entry point lives in is copied into the model folder (``code/``, the folder
MLflow's ``code_paths`` use) unless it is an installed distribution, and put on ``sys.path`` when
the model loads, so ``gravityml serve``, :func:`gravityml.load` and ``mlflow.pyfunc.load_model``
work in a process that never saw your source tree.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gravityml.errors import ModelError
from gravityml.models._nets import Standardize

CODE_DIR = "code"


@dataclass(frozen=True)
class Inputs:
    """What the network receives: ``kind`` is ``table`` (``n_features`` floats), ``image``
    (``shape`` = [C, H, W]) or ``text`` (``max_tokens`` token ids below ``vocab_size``, 0 = padding)."""

    kind: str
    n_features: int | None = None
    shape: tuple[int, ...] | None = None
    vocab_size: int | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Outputs:
    """What the network must produce: ``n_classes`` logits for classification, or ``n_outputs``
    (1) standardised values for regression; ``n_outputs`` is always the width of the output."""

    problem: str
    n_outputs: int
    n_classes: int | None = None


class OwnNetwork(nn.Module):
    """Standardise (tables, images), reshape images to (N, C, H, W), then your module."""

    def __init__(self, net: nn.Module, inputs: Inputs) -> None:
        super().__init__()
        self.kind = inputs.kind
        self.shape = tuple(inputs.shape or ())
        if inputs.kind != "text":
            width = int(inputs.n_features or 0) if inputs.kind == "table" else 1
            self.standardize = Standardize(torch.zeros(width), torch.zeros(width), torch.ones(width))
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind != "text":
            x = self.standardize(x)
        if self.kind == "image":
            x = x.reshape(-1, *self.shape)
        out: torch.Tensor = self.net(x)
        return out


def import_factory(entry_point: str) -> Any:
    """The callable ``entry_point`` names; a ModelError names the module that cannot be imported."""
    module_name, _, attr = entry_point.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"the model's code cannot be imported: module {exc.name!r} is missing (entry point {entry_point!r})",
            got=entry_point,
            fix=f"install the package that provides {exc.name!r}, or retrain so that the model folder stores it",
        ) from None
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def build_own_network(config: dict[str, Any]) -> nn.Module:
    """Your factory's module behind the platform's normalisation (untrained)."""
    inputs = Inputs(**{**config["inputs"], "shape": tuple(config["inputs"]["shape"]) if config["inputs"].get("shape") else None})
    outputs = Outputs(**config["outputs"])
    net = import_factory(config["entry_point"])(inputs, outputs, **config.get("params", {}))
    if not isinstance(net, nn.Module):
        raise ModelError(
            f"{config['entry_point']} returned a {type(net).__name__}, not a torch.nn.Module",
            allowed="an nn.Module",
            got=type(net).__name__,
            fix="return the network from the factory: def build(inputs, outputs, **params) -> nn.Module",
        )
    return OwnNetwork(net, inputs)


def describe_io(inputs: Inputs, outputs: Outputs) -> dict[str, Any]:
    described = asdict(inputs)
    described["shape"] = list(inputs.shape) if inputs.shape is not None else None  # as JSON reads it back
    return {"inputs": described, "outputs": asdict(outputs)}


# ---- your code, stored with the model ------------------------------------------------------------


def _installed(path: Path) -> bool:
    roots = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib", "stdlib")}
    return any(root in path.resolve().parents for root in roots)


def code_to_store(entry_point: str) -> list[str]:
    """Top-level package (or module) of ``entry_point`` when it is your code, not an installed one."""
    top = entry_point.partition(":")[0].split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return []
    return [] if _installed(Path(spec.origin)) else [top]


def save_code(names: list[str], folder: Path) -> None:
    """Copy each package (its folder) or module (its file) into ``folder/code``."""
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModelError(f"module {name!r} of the model's code cannot be found to store it", got=name,
                             fix="keep the package importable while the model is saved")
        origin = Path(spec.origin)
        target = folder / CODE_DIR
        target.mkdir(parents=True, exist_ok=True)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, target / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, target / origin.name)


def code_on_path(folder: Path) -> None:
    """Put a model folder's stored code first on ``sys.path`` (MLflow does the same for ``code_paths``)."""
    code = folder / CODE_DIR
    if code.is_dir() and str(code) not in sys.path:
        sys.path.insert(0, str(code))
