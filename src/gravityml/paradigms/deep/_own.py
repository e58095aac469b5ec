"""Your own torch network in the platform's loop (``model.type: torch``): what it is told about
its inputs and outputs, and the loss and optimizer a spec may name for it.

The network itself is built by :func:`gravityml.models._own.build_own_network`, from the config
made here, so a saved model rebuilds it the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from torch import nn

from gravityml.errors import TrainingError
from gravityml.models._own import Inputs, Outputs, code_to_store, describe_io
from gravityml.models._torch import TorchEncoder, image_layout
from gravityml.schema import Schema
from gravityml.spec import JobSpec, load_entry_point

#: Losses by name, and the problem each serves.
LOSSES: dict[str, tuple[str, type[nn.Module]]] = {
    "cross_entropy": ("classification", nn.CrossEntropyLoss),
    "mse": ("regression", nn.MSELoss),
    "l1": ("regression", nn.L1Loss),
    "huber": ("regression", nn.HuberLoss),
}


def input_arch(schema: Schema) -> str:
    """Which of the built-in encoders reads these rows: text, images or a table."""
    if schema.columns_of("text"):
        return "text"
    if image_layout(schema.feature_names) is not None:
        return "cnn"
    return "mlp"


def importable(spec: JobSpec) -> None:
    """Keep the spec's folder on ``sys.path`` for this training process and the DDP workers it
    spawns (they unpickle your module by name)."""
    base = str(spec.base_dir)
    if base not in sys.path:
        sys.path.append(base)


def own_config(spec: JobSpec, encoder: TorchEncoder, problem: str, n_out: int) -> dict[str, Any]:
    """The network config of your module: entry point, params, inputs, outputs, code to store."""
    assert spec.model.entry_point is not None
    if encoder.input == "text":
        inputs = Inputs("text", vocab_size=len(encoder.vocabulary), max_tokens=encoder.max_tokens)
    elif encoder.input == "image":
        inputs = Inputs("image", shape=tuple(encoder.shape or ()))
    else:
        inputs = Inputs("table", n_features=encoder.width)
    outputs = Outputs(problem, n_out, n_out if problem == "classification" else None)
    return {
        "arch": "torch",
        "entry_point": spec.model.entry_point,
        "params": dict(spec.model.params),
        **describe_io(inputs, outputs),
        "code": code_to_store(spec.model.entry_point),
    }


def make_criterion(spec: JobSpec, loss: str, weight: Any) -> nn.Module:
    """``model.loss`` (a name or an entry point) where the spec gives one, else the loop's default."""
    name = spec.model.loss
    if name is None:
        return nn.CrossEntropyLoss(weight=weight) if loss == "cross_entropy" else nn.MSELoss()
    problem = "classification" if loss == "cross_entropy" else "regression"
    if ":" in name:
        made = load_entry_point(name, "model.loss", spec.base_dir)
        return made() if isinstance(made, type) and issubclass(made, nn.Module) else _Callable(made)
    serves, cls = LOSSES[name]
    if serves != problem:
        allowed = sorted(n for n, (p, _) in LOSSES.items() if p == problem)
        raise TrainingError(
            f"model.loss: {name} is a {serves} loss and this job is {problem}",
            allowed=allowed,
            got=name,
            fix=f"use model.loss: {allowed[0]}, or a 'module:callable' loss",
        )
    return cls(weight=weight) if cls is nn.CrossEntropyLoss else cls()


def make_optimizer(spec: JobSpec, parameters: Iterable[Any], lr: float, weight_decay: float) -> Any:
    """``model.optimizer`` (adamw | adam | sgd, or ``module:callable(params, lr)``); AdamW by default."""
    import torch

    name = spec.model.optimizer or "adamw"
    if ":" in name:
        return load_entry_point(name, "model.optimizer", spec.base_dir)(parameters, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=weight_decay)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(parameters, lr=lr, weight_decay=weight_decay)


class _Callable(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, out: Any, target: Any) -> Any:
        return self.fn(out, target)
