"""Predictors, batch scoring, the inference server and exports (layer 4).

This package never imports ``paradigms``, ``placement`` or ``execution``: a serving install carries
no training code.
"""

from gravityml.inference._batch import BatchResult, predict_file, score_frame
from gravityml.inference._load import load

__all__ = ["BatchResult", "load", "predict_file", "score_frame"]
