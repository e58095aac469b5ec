"""The ``torch`` flavor: a network plus the encoder that turns validated rows into its input tensor.

A model folder holds ``network.pt`` (the state dict), ``encoder.json`` (column order, one-hot
categories, image shape, vocabulary) and the manifest, whose ``meta.network`` rebuilds the
architecture. Nothing names a device: inference runs on the CPU at ``meta.precision``.
"""

from __future__ import annotations

import copy
import json
import re
from abc import abstractmethod
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gravityml.errors import ModelError
from gravityml.models._base import GravityModel, ModelKind
from gravityml.models._sklearn import confidence_frame, interval_frame
from gravityml.schema import Schema

WEIGHTS = "network.pt"
ENCODER = "encoder.json"
PAD, UNKNOWN = 0, 1
TOKEN_PATTERN = r"[a-z0-9']+"
_PIXEL = re.compile(r"^pixel_(\d+)_(\d+)(?:_(\d+))?$")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, apostrophes)."""
    return re.findall(TOKEN_PATTERN, str(text).lower())


def image_layout(names: list[str]) -> tuple[list[str], list[int]] | None:
    """Pixel columns in (channel, row, column) order and the (C, H, W) shape, if ``names`` are pixels.

    ``pixel_R_C`` is one grey channel (scikit-learn's digits); ``pixel_K_R_C`` is channel K.
    """
    parsed = []
    for name in names:
        match = _PIXEL.match(name)
        if match is None:
            return None
        a, b, c = match.groups()
        parsed.append(((0, int(a), int(b)) if c is None else (int(a), int(b), int(c)), name))
    if not parsed:
        return None
    parsed.sort()
    shape = [max(p[0][i] for p in parsed) + 1 for i in range(3)]
    if shape[0] * shape[1] * shape[2] != len(parsed):
        return None
    return [name for _, name in parsed], shape


@dataclass
class TorchEncoder:
    """Rows -> the network's input: ``tabular`` floats, ``image`` flat pixels, ``text`` token ids."""

    input: str
    columns: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    shape: list[int] | None = None
    value_max: float | None = None
    vocabulary: list[str] = field(default_factory=list)
    max_tokens: int = 0

    @classmethod
    def fit(cls, arch: str, schema: Schema, frame: pd.DataFrame, params: dict[str, Any]) -> TorchEncoder:
        """Learn the encoding from validated training rows (``schema.validate`` output)."""
        if arch == "text":
            text = schema.columns_of("text")
            column = text[0]
            counts = Counter(tok for value in frame[column] for tok in tokenize(value))
            kept = sorted((t for t, n in counts.items() if n >= int(params["min_count"])), key=lambda t: (-counts[t], t))
            vocabulary = ["<pad>", "<unk>", *kept[: int(params["max_vocab"])]]
            return cls("text", [column], vocabulary=vocabulary, max_tokens=int(params["max_tokens"]))
        if arch == "cnn":
            layout = image_layout(schema.feature_names)
            assert layout is not None, "checked by the trainer"
            columns, shape = layout
            top = float(np.nanmax(frame[columns].to_numpy(dtype="float64")))
            # Pixels are stored 0..1, 0..16 (scikit-learn's digits) or 0..255 (8-bit files); image
            # files read at predict time are scaled to the same range.
            value_max = next(v for v in (1.0, 16.0, 255.0, top) if top <= v)
            return cls("image", columns, shape=shape, value_max=value_max)
        columns = [c.name for c in schema.features if c.kind in ("numeric", "boolean", "categorical")]
        categories = {c.name: list(c.categories or ()) for c in schema.features if c.kind == "categorical"}
        return cls("tabular", columns, categories=categories)

    @property
    def width(self) -> int:
        if self.input == "text":
            return self.max_tokens
        return sum(len(self.categories[c]) if c in self.categories else 1 for c in self.columns)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        if self.input == "text":
            index = {tok: i for i, tok in enumerate(self.vocabulary)}
            ids = np.zeros((len(frame), self.max_tokens), dtype="int64")
            for row, value in enumerate(frame[self.columns[0]].to_numpy()):
                tokens = [index.get(t, UNKNOWN) for t in tokenize(value)][: self.max_tokens]
                ids[row, : len(tokens)] = tokens
            return ids
        parts = []
        for column in self.columns:
            values = frame[column]
            if column in self.categories:
                known = self.categories[column]
                onehot = np.zeros((len(frame), len(known)), dtype="float32")
                codes = pd.Categorical(values, categories=known).codes
                rows = np.flatnonzero(codes >= 0)
                onehot[rows, codes[rows]] = 1.0
                parts.append(onehot)
            else:
                parts.append(values.to_numpy(dtype="float32").reshape(-1, 1))
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0), dtype="float32")

    def describe(self) -> dict[str, Any]:
        """How a caller outside gravityml turns rows into the input tensor."""
        if self.input == "text":
            return {
                "kind": "token_ids",
                "column": self.columns[0],
                "lowercase": True,
                "token_pattern": TOKEN_PATTERN,
                "padding_id": PAD,
                "unknown_id": UNKNOWN,
                "max_tokens": self.max_tokens,
                "vocabulary": f"{ENCODER} (vocabulary: list index = token id)",
            }
        if self.input == "image":
            return {
                "kind": "flat_pixels",
                "columns": "pixel columns in channel, row, column order",
                "shape_chw": self.shape,
                "value_range": [0.0, self.value_max],
                "normalisation": "inside the graph",
            }
        return {
            "kind": "tabular",
            "columns": [
                {"name": c, "one_hot": self.categories[c]} if c in self.categories else {"name": c} for c in self.columns
            ],
            "missing_numbers": "NaN (imputed inside the graph)",
            "normalisation": "inside the graph",
        }


class EncodedNetwork(GravityModel):
    """A network behind a :class:`TorchEncoder` (the torch and the Keras flavours): encoded rows in,
    logits (classifiers) or the standardised target (regressors) out; the probabilities, confidence
    and intervals are worked out here, once for both."""

    encoder: TorchEncoder

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The network's input for validated rows."""
        return self.encoder.transform(frame)

    @abstractmethod
    def raw_outputs(self, inputs: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """The network's outputs (logits, or the standardised value) as float64."""

    def _probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        logits = self.raw_outputs(self.encode(frame))
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.kind == "classifier":
            return confidence_frame(self._probabilities(frame), list(self.schema.classes or ()), frame.index)
        out = self.raw_outputs(self.encode(frame))[:, 0]
        value = out * float(self.meta["target_std"]) + float(self.meta["target_mean"])
        return interval_frame(value, self.meta.get("interval_half_width"), frame.index)

    def _predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.kind != "classifier":
            return super()._predict_proba(frame)
        return pd.DataFrame(self._probabilities(frame), columns=[str(c) for c in self.schema.classes or ()], index=frame.index)


class TorchModel(EncodedNetwork):
    """A trained PyTorch network with its encoder; classification, regression or image/text."""

    flavor = "torch"

    def __init__(self, network: Any, encoder: TorchEncoder, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> None:
        super().__init__(kind=kind, schema=schema, meta=meta)
        self.network = network.eval()
        self.encoder = encoder
        self.meta.setdefault("precision", "fp32")

    @property
    def precision(self) -> str:
        return str(self.meta["precision"])

    def with_precision(self, precision: str) -> TorchModel:
        """A copy that predicts at ``precision`` (fp64 | fp32 | bf16 | fp16), checked against the CPU."""
        from gravityml.compute import precision_policy, resolve_device

        precision_policy(precision, resolve_device("cpu"))
        return TorchModel(
            copy.deepcopy(self.network), self.encoder, kind=self.kind, schema=self.schema, meta={**self.meta, "precision": precision}
        )

    def raw_outputs(self, inputs: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """The network's outputs (logits, or the standardised value) as float64, at ``precision``."""
        import torch

        from gravityml.compute import precision_policy, resolve_device

        policy = precision_policy(self.precision, resolve_device("cpu"))
        dtype = policy.torch_param_dtype()
        net = self.network.to(dtype) if next(self.network.parameters()).dtype != dtype else self.network
        outs = []
        with torch.inference_mode(), policy.autocast():
            for start in range(0, len(inputs), batch_size):
                batch = torch.from_numpy(inputs[start : start + batch_size])
                if batch.is_floating_point():
                    batch = batch.to(dtype)
                outs.append(net(batch).double().numpy())
        return np.concatenate(outs, axis=0)

    # ---- ONNX ----------------------------------------------------------------------------------

    def export_onnx(self, path: Path, sample: pd.DataFrame) -> dict[str, Any]:
        """The network, with softmax (or the target's un-scaling) appended, as an ONNX graph.

        Imputation and normalisation are inside the graph; one-hot encoding of categories and
        tokenisation of text are not (``preprocessing`` in the returned metadata says how).
        """
        import torch

        inputs = self.encode(sample.iloc[: min(len(sample), 16)])
        wrapper = _Exportable(copy.deepcopy(self.network).float().eval(), self.kind, self.meta)
        example = torch.from_numpy(inputs if inputs.dtype == np.int64 else inputs.astype("float32"))
        output = "probabilities" if self.kind == "classifier" else "prediction"
        try:
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                input_names=["input"],
                output_names=[output],
                dynamic_axes={"input": {0: "batch"}, output: {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        except Exception as exc:  # the exporter's own errors carry no user fix; name the model
            from gravityml.errors import ExportError

            raise ExportError(
                f"torch.onnx.export failed for this {self.meta.get('model_type')} network: {str(exc).splitlines()[0]}",
                got=type(exc).__name__,
                fix="serve the model natively (gravityml serve REF)",
            ) from exc
        width = [int(inputs.shape[1])]
        n_out = len(self.schema.classes or ()) if self.kind == "classifier" else 1
        return {
            "inputs": [{"name": "input", "dtype": str(example.dtype).replace("torch.", ""), "shape": ["batch", *width]}],
            "outputs": [{"name": output, "dtype": "float32", "shape": ["batch", n_out]}],
            "classes": list(self.schema.classes) if self.kind == "classifier" else None,
            "preprocessing": self.encoder.describe(),
            "opset": 17,
        }

    # ---- persistence -----------------------------------------------------------------------------

    def _save_payload(self, path: Path) -> None:
        import torch

        torch.save(self.network.state_dict(), path / WEIGHTS)
        (path / ENCODER).write_text(json.dumps(asdict(self.encoder)), encoding="utf-8")
        if self.meta.get("network", {}).get("code"):  # your own network: its package travels with it
            from gravityml.models._own import save_code

            save_code(list(self.meta["network"]["code"]), path)

    @classmethod
    def _load_payload(cls, path: Path, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> TorchModel:
        import torch

        from gravityml.models._nets import build_network

        missing = [name for name in (WEIGHTS, ENCODER) if not (path / name).exists()]
        if missing or "network" not in meta:
            raise ModelError(
                f"{str(path)!r} is not a complete torch model folder",
                allowed=[WEIGHTS, ENCODER, "meta.network"],
                got=sorted(p.name for p in path.iterdir()),
                fix="retrain the model (gravityml train JOB.yaml)",
            )
        if meta["network"].get("arch") == "torch":
            from gravityml.models._own import code_on_path

            code_on_path(path)
        network = build_network(meta["network"])
        state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
        network = network.to(next(iter(state.values())).dtype) if state else network
        network.load_state_dict(state)
        encoder = TorchEncoder(**json.loads((path / ENCODER).read_text(encoding="utf-8")))
        return cls(network, encoder, kind=kind, schema=schema, meta=meta)


def _exportable_module() -> Any:
    from torch import nn

    class Exportable(nn.Module):
        def __init__(self, net: nn.Module, kind: str, meta: dict[str, Any]) -> None:
            super().__init__()
            self.net = net
            self.classifier = kind == "classifier"
            self.mean = float(meta.get("target_mean", 0.0))
            self.std = float(meta.get("target_std", 1.0))

        def forward(self, x: Any) -> Any:
            out = self.net(x)
            return out.softmax(dim=1) if self.classifier else out * self.std + self.mean

    return Exportable


def _Exportable(net: Any, kind: str, meta: dict[str, Any]) -> Any:  # noqa: N802 - reads as a class
    return _exportable_module()(net, kind, meta)
