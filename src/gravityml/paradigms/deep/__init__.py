"""Deep learning on PyTorch: the shared training loop and the torch-backed supervised trainer.

Other paradigms reuse :func:`fit_torch` (an autoencoder passes ``y=X, loss="mse"``).
"""

from gravityml.paradigms.deep._loop import CHECKPOINT, FitResult, class_weights, fit_torch, seed_everything
from gravityml.paradigms.deep._train import train

__all__ = ["CHECKPOINT", "FitResult", "class_weights", "fit_torch", "seed_everything", "train"]
