"""The ``tune:`` section of a job spec: a budget-capped hyperparameter search (issue 13, point 2).

A search space per parameter (``uniform``, ``loguniform``, ``int``, ``choice``), the metric and its
direction, the number of trials and the scheduler. Space keys name parameters of the model type
(``model.params``) or of ``train`` (``lr``, ``batch_size``, ``epochs``...); anything else is refused
when the spec is loaded, with the allowed names.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gravityml.errors import SpecError

#: Keys of ``train`` a search may vary.
TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "grad_clip")
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Distribution(_Strict):
    """One parameter's range: exactly one of uniform, loguniform, int (bounds) or choice (values)."""

    uniform: list[float] | None = Field(None, min_length=2, max_length=2, description="[low, high].")
    loguniform: list[float] | None = Field(None, min_length=2, max_length=2, description="[low, high], low > 0.")
    int: list[builtins.int] | None = Field(None, min_length=2, max_length=2, description="[low, high], both included.")
    choice: list[Any] | None = Field(None, min_length=1, description="The values to choose from.")

    @property
    def kind(self) -> str:
        return next(k for k in DISTRIBUTIONS if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _one_kind(self) -> Distribution:
        given = [k for k in DISTRIBUTIONS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"name exactly one of {list(DISTRIBUTIONS)} (got {given or 'none'})")
        bounds = self.uniform or self.loguniform or self.int
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"{given[0]}: low must be < high (got {bounds})")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError(f"loguniform: low must be > 0 (got {self.loguniform[0]})")
        return self


class TuneSpec(_Strict):
    """A hyperparameter search: ``trials`` runs of the job with values drawn from ``space``."""

    metric: str = Field(..., description="The metric to optimise, e.g. test/accuracy or test/roc_auc.")
    mode: Literal["max", "min"] = "max"
    trials: builtins.int = Field(16, ge=1, le=10_000)
    max_concurrent: builtins.int = Field(1, ge=1, le=1024, description="Trials run at once (embedded: 1).")
    scheduler: Literal["asha", "none"] = Field(
        "none", description="asha: successive halving on per-epoch values (deep models); none: every trial runs out."
    )
    search: Literal["optuna-tpe", "random"] = "optuna-tpe"
    seed: builtins.int = Field(7, description="Seed of the sampler.")
    cap_to_budget: bool = Field(
        False, description="When the forecast of all trials exceeds the budget, run the trials it covers instead of refusing."
    )
    space: dict[str, Distribution] = Field(..., min_length=1, description="Parameter name -> distribution.")

    def check_keys(self, model_params: Iterable[str]) -> None:
        """Refuse a space key that is neither a model parameter nor a train key, listing the allowed names."""
        allowed = sorted(set(model_params)) + [f"train.{k}" for k in TRAIN_KEYS] + list(TRAIN_KEYS)
        for key in self.space:
            name = key.removeprefix("train.")
            if key in model_params or name in TRAIN_KEYS:
                continue
            raise SpecError(
                f"tune.space.{key}", f"{key!r} is not a parameter of the model type or of train",
                allowed=allowed, got=key, fix="search a parameter the model takes (gravityml spec-schema lists them)",
            )

    def forecast(self, per_trial_usd: float, budget_usd: float | None) -> SearchForecast:
        """All trials' forecast against the budget, and how many trials the budget covers."""
        fits = self.trials if budget_usd is None or per_trial_usd <= 0 else min(
            self.trials, math.floor(budget_usd / per_trial_usd))
        return SearchForecast(self.trials, per_trial_usd, per_trial_usd * self.trials, budget_usd, fits)


@dataclass(frozen=True)
class SearchForecast:
    trials: int
    per_trial_usd: float
    total_usd: float
    budget_usd: float | None
    trials_that_fit: int

    @property
    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.total_usd > self.budget_usd

    def line(self) -> str:
        budget = "no budget" if self.budget_usd is None else f"budget {self.budget_usd:.4f} $"
        return (f"search: {self.trials} trials x {self.per_trial_usd:.4f} $ = {self.total_usd:.4f} $ ({budget}; "
                f"{self.trials_that_fit} trials fit)")
