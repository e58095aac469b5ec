"""The five algorithms, their validated hyperparameters, and what ``compute`` means for them.

``model.params`` are checked against the algorithm's constructor before anything is built, so a
misspelt name is a one-line error with a suggestion rather than a ``TypeError`` deep in SB3.
Strings the RL Zoo uses are understood: ``lin_2.5e-3`` is a rate falling linearly to 0
(https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/rl_zoo3/utils.py, ``linear_schedule``), and
``activation_fn: relu`` names a ``torch.nn`` activation.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from gravityml.compute import Placement
from gravityml.errors import ComputeError, SpecError
from gravityml.spec import MODEL_TYPES, JobSpec
from gravityml.spec._catalog import SB3_SET

# model.type -> SB3 class, off-policy rows and the action spaces of each: all from the model table.
_SB3 = {n: row for n, row in MODEL_TYPES.items() if row.backend == "sb3"}
ALGORITHMS: dict[str, str] = {n: row.estimators["algorithm"] for n, row in _SB3.items()}
OFF_POLICY = frozenset(n for n, row in _SB3.items() if row.off_policy)
ACTION_SPACES: dict[str, tuple[str, ...]] = {n: row.action_spaces for n, row in _SB3.items()}

#: Constructor arguments the platform sets itself (from env, train.seed and compute).
RESERVED = frozenset(SB3_SET)
SCHEDULED = frozenset({"learning_rate", "clip_range", "clip_range_vf"})
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU", "silu": "SiLU"}


def algorithm_class(model_type: str) -> Any:
    module, name = ALGORITHMS[model_type].split(":")
    return getattr(importlib.import_module(module), name)


def check_action_space(model_type: str, action_space: dict[str, Any]) -> None:
    allowed = ACTION_SPACES[model_type]
    if action_space["type"] not in allowed:
        others = sorted(t for t, spaces in ACTION_SPACES.items() if action_space["type"] in spaces)
        raise SpecError(
            "model.type",
            f"{model_type} cannot act in a {action_space['type']} action space",
            allowed=others,
            got=model_type,
            fix=f"choose one of {others} for this environment",
        )


def linear_schedule(start: float) -> Callable[[float], float]:
    """``start`` times the fraction of training left (SB3 passes 1.0 at the start, 0.0 at the end)."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * start

    return schedule


def algorithm_kwargs(spec: JobSpec) -> dict[str, Any]:
    """``model.params`` checked against the algorithm's constructor and made ready for it.

    ``train.lr`` and ``train.batch_size`` are used when set explicitly in the spec and not also in
    ``model.params``; otherwise SB3's defaults stand (the spec's defaults are for deep learning).
    """
    cls = algorithm_class(spec.model.type)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", *RESERVED)]
    params = dict(spec.model.params)
    for key in params:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            reason = " (the platform sets it from env, train.seed and compute)" if key in RESERVED else ""
            raise SpecError(
                f"model.params.{key}",
                f"{spec.model.type} takes no hyperparameter {key!r}{reason}{hint}",
                allowed=sorted(accepted),
                got=key,
                fix="remove it or correct its spelling",
            )
    given = spec.train.model_fields_set
    if "lr" in given and "learning_rate" not in params:
        params["learning_rate"] = spec.train.lr
    if "batch_size" in given and "batch_size" not in params and "batch_size" in accepted:
        params["batch_size"] = spec.train.batch_size
    params.setdefault("policy", "MlpPolicy")
    for key in SCHEDULED & params.keys():
        params[key] = _schedule(key, params[key])
    if isinstance(params.get("policy_kwargs"), dict):
        params["policy_kwargs"] = _policy_kwargs(params["policy_kwargs"])
    for key in ("train_freq",):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])  # YAML has no tuples: [1, "episode"]
    return params


def _schedule(key: str, value: Any) -> Any:
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            return linear_schedule(float(value[4:]))
        except ValueError:
            pass
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise SpecError(
        f"model.params.{key}",
        "must be a number or a linear schedule 'lin_<start>'",
        allowed="a number, or 'lin_<start>'",
        got=value,
        fix=f"write e.g. {key}: 3.0e-4 or {key}: lin_3.0e-4",
    )


def _policy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    activation = out.get("activation_fn")
    if isinstance(activation, str):
        name = ACTIVATIONS.get(activation.lower())
        if name is None:
            raise SpecError(
                "model.params.policy_kwargs.activation_fn",
                f"unknown activation {activation!r}",
                allowed=sorted(ACTIVATIONS),
                got=activation,
                fix="use one of the allowed names",
            )
        import torch.nn

        out["activation_fn"] = getattr(torch.nn, name)
    return out


def check_precision(spec: JobSpec, device: Placement) -> tuple[str, str]:
    """The precision the policy trains in, and why.

    SB3 computes in float32 throughout: ``preprocess_obs`` casts every observation with
    ``.float()`` and its losses mix those tensors with the network's, so fp64 weights would fail
    with a dtype mismatch, and there is no autocast in its training loops. fp32 is therefore the
    only precision; ``auto`` chooses it and says why, the others are refused.
    """
    precision = spec.compute.precision
    why = "Stable-Baselines3 computes in float32 (observations are cast with .float())"
    if precision in ("fp32", "auto"):
        return "fp32", why if precision == "auto" else "asked for"
    raise ComputeError(
        f"compute.precision: {precision} is not available for reinforcement learning on {device.kind}; {why}",
        allowed=["fp32", "auto"],
        got=precision,
        fix="set compute.precision: fp32",
    )
