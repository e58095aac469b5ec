"""The networks behind the ``torch`` flavor, rebuilt from a JSON config when a model is loaded.

Each network maps the tensor a :class:`~gravityml.models._torch.TorchModel` encodes from rows to
outputs (class logits, or one standardised value for regression). Imputation and normalisation are
the first layer of the network, as buffers, so an exported ONNX graph takes raw numbers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gravityml.models._net_params import DEFAULTS  # torch-free, so that spec checks need no torch

__all__ = ["CNN", "DEFAULTS", "MLP", "TextNet", "build_network", "fit_temperature", "scale_logits"]


class Standardize(nn.Module):
    """Missing values -> the training median, then (x - mean) / std, all as saved buffers."""

    def __init__(self, fill: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("fill", fill.clone().float())
        self.register_buffer("mean", mean.clone().float())
        self.register_buffer("std", std.clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(x), self.fill.to(x.dtype), x)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class MLP(nn.Module):
    """Tabular: standardise, then Linear-ReLU-Dropout blocks and a linear head."""

    def __init__(self, n_inputs: int, n_outputs: int, hidden: list[int], dropout: float) -> None:
        super().__init__()
        self.standardize = Standardize(torch.zeros(n_inputs), torch.zeros(n_inputs), torch.ones(n_inputs))
        layers: list[nn.Module] = []
        width = n_inputs
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.standardize(x))


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input (He et al. 2016, arXiv:1512.03385); stride 2 halves H, W."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.skip(x))


class CNN(nn.Module):
    """Images as flat pixel rows: standardise, reshape to (C, H, W), a small residual net.

    ``channels`` is the stem width and ``blocks`` the number of residual blocks; every block after
    the first doubles the width and halves the image while it is at least 8 pixels on a side.
    """

    def __init__(
        self, shape: list[int], n_outputs: int, channels: int, blocks: int, dropout: float
    ) -> None:
        super().__init__()
        c, h, w = shape
        self.shape = (c, h, w)
        self.standardize = Standardize(torch.zeros(1), torch.zeros(1), torch.ones(1))
        self.stem = nn.Sequential(nn.Conv2d(c, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())
        stages: list[nn.Module] = []
        width, side = channels, min(h, w)
        for i in range(blocks):
            stride = 2 if i > 0 and side >= 8 else 1
            out = width * 2 if stride == 2 else width
            stages.append(ResidualBlock(width, out, stride))
            width, side = out, side // stride
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x).reshape(-1, *self.shape)
        return self.head(self.stages(self.stem(x)))


class TextNet(nn.Module):
    """Token ids (0 = padding) -> mean of embeddings over real tokens -> a small MLP head.

    The masked mean is what ``nn.EmbeddingBag(mode="mean")`` computes, written out so that it
    exports to ONNX with plain Gather/ReduceSum operators.
    """

    def __init__(self, vocab_size: int, n_outputs: int, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_outputs))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != 0).unsqueeze(-1).to(self.embed.weight.dtype)
        pooled = (self.embed(ids) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)




def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature T > 0 minimising the log loss of ``softmax(logits / T)`` (Guo et al. 2017,
    "On calibration of modern neural networks", https://arxiv.org/abs/1706.04599), fitted by LBFGS
    on log T so that T stays positive."""
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    logits, targets = logits.detach().double(), targets.detach().long()
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def scale_logits(network: nn.Module, factor: float) -> None:
    """Multiply the network's logits by ``factor`` by scaling its output layer (the last Linear):
    temperature scaling that needs no extra layer, so saved weights and ONNX graphs keep their form."""
    head = [m for m in network.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(factor)
        if head.bias is not None:
            head.bias.mul_(factor)


def build_network(config: dict[str, Any]) -> nn.Module:
    """The (untrained) network a config describes: ``arch``, its sizes and its params."""
    arch, params = config["arch"], config["params"]
    if arch == "torch":  # your own module, by entry point
        from gravityml.models._own import build_own_network

        return build_own_network(config)
    if arch == "mlp":
        return MLP(config["n_inputs"], config["n_outputs"], list(params["hidden"]), float(params["dropout"]))
    if arch == "cnn":
        return CNN(list(config["shape"]), config["n_outputs"], int(params["channels"]), int(params["blocks"]), float(params["dropout"]))
    if arch == "text":
        return TextNet(config["vocab_size"], config["n_outputs"], int(params["dim"]), int(params["hidden"]), float(params["dropout"]))
    raise ValueError(f"unknown architecture {arch!r}")
