"""The four kinds of learning behind one entry point (layer 3).

:func:`train` picks the trainer for ``(task, backend)``. Trainers are named as strings and imported
when used, so a scikit-learn job never imports torch or Stable-Baselines3.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable

from gravityml.errors import GravityMLWarning, TrainingError
from gravityml.paradigms._base import TrainContext, TrainResult
from gravityml.spec import MODEL_TYPES

#: (task, backend) -> "module:function" taking a TrainContext and returning a TrainResult.
TRAINERS: dict[tuple[str, str], str] = {
    ("supervised", "sklearn"): "gravityml.paradigms.supervised:train",
    ("supervised", "torch"): "gravityml.paradigms.deep:train",
    ("supervised", "tensorflow"): "gravityml.paradigms.deep._keras:train",  # keras, and mlp/cnn with framework: tensorflow
    ("reinforcement", "sb3"): "gravityml.paradigms.reinforcement:train",
    ("unsupervised", "sklearn"): "gravityml.paradigms.unsupervised:train",
    ("unsupervised", "torch"): "gravityml.paradigms.unsupervised:train_autoencoder",
    ("semi_supervised", "sklearn"): "gravityml.paradigms.semi_supervised:train",
    ("semi_supervised", "torch"): "gravityml.paradigms.semi_supervised:train",
    ("supervised", "spark"): "gravityml.paradigms.spark:train",
    ("unsupervised", "spark"): "gravityml.paradigms.spark:train",
}


def trainer_for(task: str, model_type: str, framework: str = "torch") -> Callable[[TrainContext], TrainResult]:
    backend = "tensorflow" if framework == "tensorflow" else MODEL_TYPES[model_type].backend
    target = TRAINERS.get((task, backend))
    if target is None:
        raise TrainingError(
            f"no trainer for {task} models on the {backend} backend",
            allowed=sorted(f"{t}/{b}" for t, b in TRAINERS),
            got=f"{task}/{backend}",
            fix="choose another model type",
        )
    module, func = target.split(":")
    trainer: Callable[[TrainContext], TrainResult] = getattr(importlib.import_module(module), func)
    return trainer


def train(ctx: TrainContext) -> TrainResult:
    """Train the job ``ctx.spec`` describes.

    A model whose test metrics are no better than chance is still returned (and registered), with
    a :class:`~gravityml.errors.GravityMLWarning` and a ``chance_level`` tag that says why.
    """
    from gravityml.paradigms._metrics import chance_level

    if ctx.spec.train.calibrate != "none" and ctx.spec.task != "supervised":
        raise TrainingError(
            f"train.calibrate: calibration is offered for supervised classifiers only (task: {ctx.spec.task})",
            allowed=["none"],
            got=ctx.spec.train.calibrate,
            fix="remove train.calibrate",
        )
    result = trainer_for(ctx.spec.task, ctx.spec.model.type, ctx.spec.model.framework)(ctx)
    reason = chance_level(result.metrics)
    if reason is not None:
        result.tags["chance_level"] = reason
        hint = "docs/unsupervised.md says where each detector fits" if ctx.spec.task == "unsupervised" else "check the features and the label"
        warnings.warn(f"{ctx.spec.name}: {reason}; {hint}", GravityMLWarning, stacklevel=2)
    return result


__all__ = ["TRAINERS", "TrainContext", "TrainResult", "train", "trainer_for"]
