"""A small residual network: ``build(inputs, outputs, **params)`` is the factory gravityml calls.

``inputs.kind`` is ``table`` (``inputs.n_features`` floats per row), ``image`` (``inputs.shape``
= [C, H, W]) or ``text`` (``inputs.max_tokens`` ids below ``inputs.vocab_size``);
``outputs.n_outputs`` is the number of logits (classes) or 1 for regression.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """x + MLP(LayerNorm(x)): the pre-norm residual block of He et al. 2016 (arXiv:1603.05027)."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Dropout(dropout), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualNet(nn.Module):
    def __init__(self, n_in: int, n_out: int, width: int, blocks: int, dropout: float, image: bool) -> None:
        super().__init__()
        self.image = image
        self.stem = nn.Linear(n_in, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width, dropout) for _ in range(blocks)])
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image:
            x = x.flatten(1)  # gravityml hands images over as (N, C, H, W)
        return self.head(self.blocks(self.stem(x)))


def build(inputs: Any, outputs: Any, width: int = 64, blocks: int = 2, dropout: float = 0.1) -> nn.Module:
    """The network for these inputs and outputs."""
    if inputs.kind == "text":
        raise ValueError("this example network reads tables and images, not text")
    n_in = inputs.n_features if inputs.kind == "table" else int(torch.tensor(inputs.shape).prod())
    return ResidualNet(n_in, outputs.n_outputs, width, blocks, dropout, image=inputs.kind == "image")
