"""Pseudo-labelling (Lee 2013, "Pseudo-Label: the simple and efficient semi-supervised learning
method for deep neural networks"): fit on the labelled rows, label the unlabelled rows the model is
confident about, refit on both, for a few rounds.

Generic over a ``fit(X, codes) -> model`` function whose model has ``predict_proba`` (one column per
class code, in order), so a torch network and a scikit-learn estimator run the same loop. Unlike
self-training, every round relabels the whole unlabelled pool with the latest model, so an early
mistake can be undone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gravityml._typing import MetricSink


@dataclass
class PseudoLabelResult:
    model: Any
    rounds_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: str = "rounds done"


def pseudo_label(
    fit: Callable[[pd.DataFrame, np.ndarray], Any],
    X_labelled: pd.DataFrame,
    codes: np.ndarray,
    X_unlabelled: pd.DataFrame,
    *,
    threshold: float,
    rounds: int,
    sink: MetricSink | None = None,
    should_stop: Callable[[], str | None] = lambda: None,
) -> PseudoLabelResult:
    """Run the loop; ``threshold`` is the least class probability that earns a pseudo-label."""
    model = fit(X_labelled, codes)
    result = PseudoLabelResult(model=model, rounds_run=0)
    previous: np.ndarray | None = None
    for round_ in range(1, rounds + 1):
        proba = np.asarray(model.predict_proba(X_unlabelled), dtype="float64")
        confident = proba.max(axis=1) >= threshold
        guesses = proba.argmax(axis=1)
        row = {"pseudo/labelled_share": float(confident.mean()), "pseudo/added_rows": float(confident.sum())}
        result.history.append(row)
        if sink is not None:
            sink.log_metrics(row, step=round_)
        if not confident.any():
            result.stopped = f"no unlabelled row reached the threshold {threshold} in round {round_}"
            break
        if previous is not None and np.array_equal(previous, np.where(confident, guesses, -1)):
            result.stopped = f"pseudo-labels unchanged in round {round_}"
            break
        previous = np.where(confident, guesses, -1)
        X = pd.concat([X_labelled, X_unlabelled[confident]], ignore_index=True)
        y = np.concatenate([codes, guesses[confident]])
        model = fit(X, y)
        result.model, result.rounds_run = model, round_
        reason = should_stop()
        if reason is not None:
            result.stopped = reason
            break
    return result
