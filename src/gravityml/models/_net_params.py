"""What the built-in torch networks take, readable without importing torch.

``gravityml validate`` and ``plan`` check ``model.params`` of an ``mlp``, ``cnn`` or ``text`` job
against these signatures and defaults, so a spec is checked without the 1-2 s torch import. The
networks themselves are in :mod:`gravityml.models._nets`; a test keeps each signature here equal to
its network's constructor.
"""

from __future__ import annotations

from typing import Any

#: Architecture defaults; ``model.params`` in a spec override them (unknown names are errors).
DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": [128, 64], "dropout": 0.1},
    "cnn": {"channels": 32, "blocks": 2, "dropout": 0.1},
    "text": {"dim": 64, "hidden": 64, "dropout": 0.1, "max_tokens": 128, "max_vocab": 20000, "min_count": 1},
}


def MLP(n_inputs: int, n_outputs: int, hidden: list[int], dropout: float) -> None:  # noqa: N802 - mirrors the class
    """The parameters of :class:`gravityml.models._nets.MLP`."""


def CNN(shape: list[int], n_outputs: int, channels: int, blocks: int, dropout: float) -> None:  # noqa: N802
    """The parameters of :class:`gravityml.models._nets.CNN`."""


def TextNet(vocab_size: int, n_outputs: int, dim: int, hidden: int, dropout: float) -> None:  # noqa: N802
    """The parameters of :class:`gravityml.models._nets.TextNet`."""
