"""The ``keras`` flavor: a Keras 3 network on TensorFlow plus the encoder that turns rows into its input.

Two kinds of network live here: the built-in ``mlp``, ``cnn`` and ``text`` on TensorFlow
(``model: {type: mlp, framework: tensorflow}``) and your own Keras model from a factory
(``model: {type: keras, entry_point: "my_pkg.nets:build"}``), called as
``build(inputs, outputs, **params)`` with the same :class:`~gravityml.models._own.Inputs` and
:class:`~gravityml.models._own.Outputs` a torch factory gets, and returning a ``keras.Model`` (or
any layer). Either way the platform wraps it: raw numbers in, NaN -> the training median and
``(x - mean) / std`` inside the graph (a :class:`Standardize` layer), images reshaped from flat
pixels to ``(N, H, W, C)`` (channels last, as Keras' layers expect), and outputs cast to float32.
Text is tokenised by the platform's own tokenizer (the torch flavor's encoder and vocabulary, so both
frameworks read a document as the same token ids) and the ``text`` network is the torch ``TextNet``:
an embedding, its mean over the real tokens (id 0 is padding), a small ReLU head.
So the ONNX and TFLite graphs take the same raw rows (or token ids) the torch flavor's graphs take.

A model folder holds ``network.weights.h5`` (Keras' weights file), ``encoder.json`` (the torch
flavor's encoder: column order, one-hot categories, image shape, vocabulary), the manifest whose
``meta.network`` rebuilds the architecture, ``representative.npy`` (up to 256 encoded training
rows, the int8 TFLite calibration set) and, for your own model, your package under ``code/``
(MLflow's ``code_paths``). Inference runs at float32: Keras' mixed-precision policies keep the
variables in float32, so the weights are the trained ones exactly; :meth:`KerasModel.with_precision`
gives a copy that predicts under another policy (what ``gravityml precision --model`` compares).

TensorFlow is the ``tensorflow`` extra; nothing here imports it until a keras model is built or
loaded, and a missing install is a :class:`~gravityml.errors.ModelError` that names the extra.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from gravityml.errors import ExportError, ModelError
from gravityml.models._base import GravityModel, ModelKind
from gravityml.models._sklearn import confidence_frame, interval_frame
from gravityml.models._torch import ENCODER, EncodedNetwork, TorchEncoder
from gravityml.schema import Schema

WEIGHTS = "network.weights.h5"
REPRESENTATIVE = "representative.npy"
TFLITE_FILE = "model.tflite"
#: compute.precision -> the Keras dtype policy (https://keras.io/api/mixed_precision/policy/).
POLICIES = {"fp64": "float64", "fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
EXTRA = "pip install 'gravityml[tensorflow]'"
OPSET = 17
#: TFLite operators an int8 export keeps in float32: the Standardize layer's NaN test and select.
FLOAT_OPS = ("LESS_EQUAL", "SELECT_V2")


def keras_module() -> Any:
    """``keras`` on the TensorFlow backend, imported now; a ModelError names the extra if it is missing."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    try:
        import tensorflow  # noqa: F401 - the backend, imported with keras

        import keras
    except ImportError as exc:
        raise ModelError(
            f"keras models need TensorFlow and Keras, which are not installed ({exc.name or exc})",
            allowed="an environment with the tensorflow extra",
            got=str(exc.name or exc),
            fix=f"{EXTRA} (make install does)",
        ) from None
    if keras.backend.backend() != "tensorflow":
        raise ModelError(
            "keras models train on the TensorFlow backend",
            allowed=["tensorflow"],
            got=keras.backend.backend(),
            fix="set KERAS_BACKEND=tensorflow (or leave it unset)",
        )
    return keras


@contextlib.contextmanager
def dtype_policy(precision: str) -> Iterator[str]:
    """Keras' global dtype policy for ``precision`` while a network is built (then the old one)."""
    keras = keras_module()
    name = POLICIES[precision]
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(before)


#: How the Standardize layer finds NaN when it is traced: ``compare`` (``not x <= inf``, which TFLite's
#: converter keeps; it folds ``x != x``) or ``isnan`` (IsNaN, which tf2onnx turns into a Where; a
#: comparison it turns into ``cond * x + (1 - cond) * fill``, and 0 * NaN is NaN).
_NAN_TEST = {"mode": "compare"}


@contextlib.contextmanager
def nan_test(mode: str) -> Iterator[None]:
    before = _NAN_TEST["mode"]
    _NAN_TEST["mode"] = mode
    try:
        yield
    finally:
        _NAN_TEST["mode"] = before


@functools.cache
def _layers() -> SimpleNamespace:
    """The layers this flavor adds, defined once keras is imported."""
    keras = keras_module()
    ops = keras.ops

    class Standardize(keras.layers.Layer):  # type: ignore[misc, name-defined]
        """NaN -> the training median, then (x - mean) / std; float32 whatever the policy.

        NaN is found as ``not (x <= inf)`` (or IsNaN while an ONNX graph is traced, see ``nan_test``).
        """

        def __init__(self, width: int, **kwargs: Any) -> None:
            kwargs["dtype"] = "float32"
            super().__init__(**kwargs)
            self.width = int(width)

        def build(self, input_shape: Any) -> None:
            for name, init in (("fill", "zeros"), ("mean", "zeros"), ("std", "ones")):
                setattr(self, name, self.add_weight(name=name, shape=(self.width,), initializer=init, trainable=False))

        def call(self, x: Any) -> Any:
            if _NAN_TEST["mode"] == "isnan":
                x = ops.where(ops.isnan(x), self.fill, x)
            else:
                x = ops.where(ops.less_equal(x, float("inf")), x, self.fill)
            return (x - self.mean) / self.std

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "width": self.width}

        def set_stats(self, fill: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
            self.fill.assign(np.asarray(fill, dtype="float32"))
            self.mean.assign(np.asarray(mean, dtype="float32"))
            self.std.assign(np.asarray(std, dtype="float32"))

    class MaskedMean(keras.layers.Layer):  # type: ignore[misc, name-defined]
        """The mean of token embeddings over real tokens (id != 0): ``nn.EmbeddingBag(mode="mean")``,
        written with plain multiply / sum / divide so that tf2onnx and the TFLite converter keep it.
        Summed in float32 under any policy (bfloat16 counts tokens exactly only up to 256)."""

        def __init__(self, **kwargs: Any) -> None:
            kwargs["dtype"] = "float32"
            super().__init__(**kwargs)

        def call(self, embedded: Any, ids: Any) -> Any:
            mask = ops.expand_dims(ops.cast(ops.not_equal(ids, 0), embedded.dtype), -1)
            count = ops.maximum(ops.sum(mask, axis=1), ops.cast(1.0, embedded.dtype))
            return ops.sum(embedded * mask, axis=1) / count

    return SimpleNamespace(Standardize=Standardize, MaskedMean=MaskedMean)


# ---- the networks -----------------------------------------------------------------------------------


def _mlp(keras: Any, x: Any, n_out: int, hidden: list[int], dropout: float) -> Any:
    for size in hidden:
        x = keras.layers.Dense(int(size), activation="relu")(x)
        x = keras.layers.Dropout(float(dropout))(x)
    return keras.layers.Dense(n_out)(x)


def _residual(keras: Any, x: Any, c_in: int, c_out: int, stride: int) -> Any:
    """conv-BN-ReLU-conv-BN plus the input (the torch CNN's block, channels last). BatchNorm's
    momentum is torch's (0.1 there, 0.9 in Keras' convention): Keras' 0.99 leaves the running
    statistics far from the data after a few hundred steps (examples/keras_cnn.yaml: 0.84 test accuracy with 0.99, 0.98 with 0.9)."""
    layers = keras.layers
    out = layers.Conv2D(c_out, 3, strides=stride, padding="same", use_bias=False)(x)
    out = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(out))
    out = layers.BatchNormalization(momentum=0.9)(layers.Conv2D(c_out, 3, padding="same", use_bias=False)(out))
    skip = x
    if stride != 1 or c_in != c_out:
        skip = layers.BatchNormalization(momentum=0.9)(layers.Conv2D(c_out, 1, strides=stride, use_bias=False)(x))
    return layers.ReLU()(layers.Add()([out, skip]))


def _cnn(keras: Any, x: Any, shape: list[int], n_out: int, channels: int, blocks: int, dropout: float) -> Any:
    """The torch ``cnn``'s shape: a stem, ``blocks`` residual blocks (each after the first doubles
    the width and halves the image while it is at least 8 pixels on a side), pooling, a linear head."""
    layers = keras.layers
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(layers.Conv2D(int(channels), 3, padding="same", use_bias=False)(x)))
    width, side = int(channels), min(shape[1], shape[2])
    for i in range(int(blocks)):
        stride = 2 if i > 0 and side >= 8 else 1
        out = width * 2 if stride == 2 else width
        x = _residual(keras, x, width, out, stride)
        width, side = out, side // stride
    x = layers.Dropout(float(dropout))(layers.GlobalAveragePooling2D()(x))
    return layers.Dense(n_out)(x)


def _text(keras: Any, ids: Any, vocab_size: int, n_out: int, dim: int, hidden: int, dropout: float) -> Any:
    """The torch ``TextNet`` on Keras: embedding, masked mean over tokens, Dense-ReLU-Dropout, linear head."""
    layers = keras.layers
    embedded = layers.Embedding(int(vocab_size), int(dim), name="embed")(ids)
    x = _layers().MaskedMean(name="pool")(embedded, ids)
    x = layers.Dropout(float(dropout))(layers.Dense(int(hidden), activation="relu")(x))
    return layers.Dense(n_out)(x)


def _own_net(config: dict[str, Any]) -> tuple[Any, Any]:
    """Your factory's network and the Inputs it was told about."""
    from gravityml.models._own import Inputs, Outputs, import_factory

    described = dict(config["inputs"])
    described["shape"] = tuple(described["shape"]) if described.get("shape") else None
    inputs, outputs = Inputs(**described), Outputs(**config["outputs"])
    net = import_factory(config["entry_point"])(inputs, outputs, **config.get("params", {}))
    if not callable(net) or not hasattr(net, "trainable_variables"):
        raise ModelError(
            f"{config['entry_point']} returned a {type(net).__name__}, not a Keras model or layer",
            allowed="a keras.Model (or keras.layers.Layer)",
            got=type(net).__name__,
            fix="return the network from the factory: def build(inputs, outputs, **params) -> keras.Model",
        )
    return net, inputs


def input_kind(config: dict[str, Any]) -> str:
    """``table``, ``image`` or ``text``: what the network's input holds."""
    if config["arch"] == "keras":
        return str(config["inputs"]["kind"])
    return {"cnn": "image", "text": "text"}.get(config["arch"], "table")


def input_width(config: dict[str, Any]) -> int:
    """Values per row of the network's input tensor."""
    if config["arch"] == "keras":
        given = config["inputs"]
        if given["kind"] == "text":
            return int(given["max_tokens"])
        if given["kind"] == "image":
            return int(np.prod(given["shape"]))
        return int(given["n_features"])
    if config["arch"] == "cnn":
        return int(np.prod(config["shape"]))
    if config["arch"] == "text":
        return int(config["params"]["max_tokens"])
    return int(config["n_inputs"])


def build_keras_network(config: dict[str, Any]) -> Any:
    """The (untrained) keras.Model a config describes, at the current dtype policy.

    ``config`` is the torch flavor's network config (``arch`` mlp | cnn | text, sizes, params) or, for your
    own model, ``arch: keras`` with the entry point, params, inputs, outputs and code to store.
    """
    keras = keras_module()
    kind, width = input_kind(config), input_width(config)
    x_in = keras.Input(shape=(width,), dtype="int64" if kind == "text" else "float32", name="input")
    x = x_in
    if kind != "text":
        stats_width = 1 if kind == "image" else width
        x = _layers().Standardize(stats_width, name="standardize")(x)
    if config["arch"] == "keras":
        net, inputs = _own_net(config)
        if kind == "image":
            c, h, w = inputs.shape
            x = keras.layers.Permute((2, 3, 1))(keras.layers.Reshape((c, h, w))(x))
        out = net(x)
    elif config["arch"] == "cnn":
        c, h, w = config["shape"]
        x = keras.layers.Permute((2, 3, 1))(keras.layers.Reshape((c, h, w))(x))
        p = config["params"]
        out = _cnn(keras, x, list(config["shape"]), int(config["n_outputs"]), p["channels"], p["blocks"], p["dropout"])
    elif config["arch"] == "mlp":
        p = config["params"]
        out = _mlp(keras, x, int(config["n_outputs"]), list(p["hidden"]), p["dropout"])
    elif config["arch"] == "text":
        p = config["params"]
        out = _text(keras, x, int(config["vocab_size"]), int(config["n_outputs"]), p["dim"], p["hidden"], p["dropout"])
    else:
        raise ValueError(f"no keras network for architecture {config['arch']!r}")
    # The loss and what leaves the model run in float32 under any mixed policy (Keras' advice).
    out = keras.layers.Activation("linear", dtype="float32", name="output")(out)
    return keras.Model(x_in, out, name=f"gravityml_{config['arch']}")


def set_standardize(network: Any, fill: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """Write the training statistics into the network's Standardize layer (if it has one)."""
    try:
        layer = network.get_layer("standardize")
    except ValueError:
        return
    layer.set_stats(fill, mean, std)


# ---- the flavor ---------------------------------------------------------------------------------


class KerasModel(EncodedNetwork):
    """A trained Keras network with its encoder; classification or regression on tables, images, text."""

    flavor = "keras"

    def __init__(
        self,
        network: Any,
        encoder: TorchEncoder,
        *,
        kind: ModelKind,
        schema: Schema,
        meta: dict[str, Any],
        representative: np.ndarray | None = None,
    ) -> None:
        super().__init__(kind=kind, schema=schema, meta=meta)
        self.network = network
        self.encoder = encoder
        self.representative = representative
        self.meta.setdefault("precision", "fp32")

    @property
    def precision(self) -> str:
        return str(self.meta["precision"])

    def with_precision(self, precision: str) -> KerasModel:
        """A copy that predicts at ``precision`` (fp64 | fp32 | bf16 | fp16), checked against the CPU:
        the network rebuilt under that precision's Keras dtype policy (bf16 -> ``mixed_bfloat16``,
        computing in bfloat16 on float32 variables) with these weights, as ``precision: auto`` trains it."""
        from gravityml.compute import precision_policy, resolve_device

        precision_policy(precision, resolve_device("cpu"))
        with dtype_policy(precision):
            network = build_keras_network(self.meta["network"])
        network.set_weights(self.network.get_weights())
        return KerasModel(network, self.encoder, kind=self.kind, schema=self.schema,
                          meta={**self.meta, "precision": precision}, representative=self.representative)

    def _as_input(self, inputs: np.ndarray) -> np.ndarray:
        return inputs if inputs.dtype == np.int64 else inputs.astype("float32")

    def raw_outputs(self, inputs: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """The network's outputs (logits, or the standardised value) as float64."""
        inputs = self._as_input(inputs)
        outs = [
            np.asarray(self.network(inputs[i : i + batch_size], training=False), dtype="float64")
            for i in range(0, len(inputs), batch_size)
        ]
        return np.concatenate(outs, axis=0) if outs else np.zeros((0, self._width_out()), dtype="float64")

    def _width_out(self) -> int:
        return len(self.schema.classes or ()) if self.kind == "classifier" else 1

    # ---- exports ----------------------------------------------------------------------------------

    def serving_network(self) -> Any:
        """The network with softmax (classifiers) or the target's un-scaling (regressors) appended:
        what the ONNX and TFLite graphs compute."""
        keras = keras_module()
        out = self.network.outputs[0]
        if self.kind == "classifier":
            out = keras.layers.Softmax(axis=1, dtype="float32", name="probabilities")(out)
        else:
            mean, std = float(self.meta.get("target_mean", 0.0)), float(self.meta.get("target_std", 1.0))
            out = keras.layers.Rescaling(std, offset=mean, dtype="float32", name="prediction")(out)
        return keras.Model(self.network.inputs, out, name="gravityml_serving")

    def _graph(self, width: int, output: str, extra: dict[str, Any]) -> dict[str, Any]:
        dtype = "int64" if self.encoder.input == "text" else "float32"
        return {
            "inputs": [{"name": "input", "dtype": dtype, "shape": ["batch", width]}],
            "outputs": [{"name": output, "dtype": "float32", "shape": ["batch", self._width_out()]}],
            "classes": list(self.schema.classes or ()) if self.kind == "classifier" else None,
            "preprocessing": self.encoder.describe(),
            **extra,
        }

    def export_onnx(self, path: Path, sample: pd.DataFrame) -> dict[str, Any]:
        """The serving network as an ONNX graph, converted by tf2onnx from a ``tf.function``."""
        keras_module()
        import tensorflow as tf

        try:
            import tf2onnx
        except ImportError:
            raise ExportError("tf2onnx is not installed", allowed="the tensorflow extra", got="no tf2onnx",
                              fix=f"{EXTRA}") from None
        serving = self.serving_network()
        output = "probabilities" if self.kind == "classifier" else "prediction"
        width = input_width(self.meta["network"])
        dtype = tf.int64 if self.encoder.input == "text" else tf.float32
        signature = [tf.TensorSpec((None, width), dtype, name="input")]

        @tf.function(input_signature=signature)
        def serve(x: Any) -> dict[str, Any]:
            return {output: serving(x, training=False)}

        try:
            with contextlib.redirect_stdout(io.StringIO()), nan_test("isnan"):
                proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=OPSET, output_path=str(path))
        except Exception as exc:  # the converter's own errors carry no user fix; name the model
            raise ExportError(
                f"tf2onnx could not convert this {self.meta.get('model_type')} network: {str(exc).splitlines()[0]}",
                allowed="a network of operators tf2onnx converts (opset 17)",
                got=type(exc).__name__,
                fix="serve the model natively (gravityml serve REF)",
            ) from exc
        names = [o.name for o in proto.graph.output]
        if names != [output]:
            raise ExportError("tf2onnx named the graph's output unexpectedly", allowed=[output], got=names,
                              fix="report this with the model's network config")
        return self._graph(width, output, {"opset": OPSET})

    def export_tflite(self, path: Path, sample: pd.DataFrame, quantize: str | None = None) -> dict[str, Any]:
        """The serving network as a TensorFlow Lite flatbuffer: float32, or int8 (post-training
        integer quantization of weights and activations, calibrated on ``representative.npy``, the
        training rows stored with the model, else on ``sample``), float input and output either way."""
        keras_module()
        import tensorflow as tf

        if quantize not in (None, "int8"):
            raise ExportError("unknown quantization", allowed=["int8"], got=quantize, fix="use quantize='int8'")
        converter = tf.lite.TFLiteConverter.from_keras_model(self.serving_network())
        calibration = "none"
        if quantize == "int8":
            rows = self.representative
            calibration = f"{len(rows)} training rows stored with the model" if rows is not None else ""
            if rows is None:
                rows = self.encode(sample)
                calibration = f"{len(rows)} of the rows given for parity (the model stores no training rows)"
            rows = self._as_input(rows)

            def representative() -> Iterator[list[np.ndarray]]:
                for i in range(len(rows)):
                    yield [rows[i : i + 1]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                if quantize == "int8":
                    # The NaN test and its select stay float (selective quantization, TensorFlow's
                    # quantization debugger): quantized, ``x <= inf`` shares one scale with inf and
                    # every input rounds to the same value (35% label agreement on iris, 100% so).
                    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(FLOAT_OPS))
                    debugger = tf.lite.experimental.QuantizationDebugger(
                        converter=converter, debug_dataset=representative, debug_options=options
                    )
                    flat = debugger.get_nondebug_quantized_model()
                else:
                    flat = converter.convert()
        except Exception as exc:  # the converter's own errors carry no user fix
            raise ExportError(
                f"the TFLite converter could not convert this {self.meta.get('model_type')} network: {str(exc).splitlines()[0]}",
                allowed="a network of TFLite builtin operators",
                got=type(exc).__name__,
                fix="export to ONNX instead (gravityml export REF --format onnx)",
            ) from exc
        Path(path).write_bytes(flat)
        output = "probabilities" if self.kind == "classifier" else "prediction"
        return self._graph(input_width(self.meta["network"]), output, {"quantized": quantize, "calibration": calibration})

    def tflite_predictor(self, path: Path) -> TfliteModel:
        """``path`` (a .tflite file) behind the predictor contract, run by the TFLite interpreter."""
        return TfliteModel(Path(path), self.encoder, kind=self.kind, schema=self.schema, meta=dict(self.meta))

    # ---- persistence -------------------------------------------------------------------------------

    def _save_payload(self, path: Path) -> None:
        self.network.save_weights(str(path / WEIGHTS))
        (path / ENCODER).write_text(json.dumps(asdict(self.encoder)), encoding="utf-8")
        if self.representative is not None:
            np.save(path / REPRESENTATIVE, self.representative)
        if self.meta.get("network", {}).get("code"):  # your own model: its package travels with it
            from gravityml.models._own import save_code

            save_code(list(self.meta["network"]["code"]), path)

    @classmethod
    def _load_payload(cls, path: Path, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> KerasModel:
        missing = [name for name in (WEIGHTS, ENCODER) if not (path / name).exists()]
        if missing or "network" not in meta:
            raise ModelError(
                f"{str(path)!r} is not a complete keras model folder",
                allowed=[WEIGHTS, ENCODER, "meta.network"],
                got=sorted(p.name for p in path.iterdir()),
                fix="retrain the model (gravityml train JOB.yaml)",
            )
        keras_module()
        if meta["network"].get("arch") == "keras":
            from gravityml.models._own import code_on_path

            code_on_path(path)
        with dtype_policy("fp32"):
            network = build_keras_network(meta["network"])
        network.load_weights(str(path / WEIGHTS))
        encoder = TorchEncoder(**json.loads((path / ENCODER).read_text(encoding="utf-8")))
        rows = np.load(path / REPRESENTATIVE) if (path / REPRESENTATIVE).exists() else None
        return cls(network, encoder, kind=kind, schema=schema, meta=meta, representative=rows)


class TfliteModel(GravityModel):
    """A .tflite file behind the predictor contract: rows -> the keras model's encoder -> interpreter."""

    flavor = "tflite"

    def __init__(self, path: Path, encoder: TorchEncoder, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> None:
        import warnings

        import tensorflow as tf

        super().__init__(kind=kind, schema=schema, meta=meta)
        self.path = path
        self.encoder = encoder
        with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated ... use ai_edge_litert"
            warnings.simplefilter("ignore")
            self.interpreter = tf.lite.Interpreter(model_path=str(path))
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._rows = -1

    def run(self, frame: pd.DataFrame) -> np.ndarray:
        """The graph's output (probabilities, or the prediction) for validated rows."""
        return self.run_encoded(self.encoder.transform(frame))

    def run_encoded(self, encoded: np.ndarray) -> np.ndarray:
        """The graph's output for rows already encoded (the keras model's ``encode``)."""
        encoded = encoded.astype(self._input["dtype"])
        if len(encoded) != self._rows:
            self.interpreter.resize_tensor_input(self._input["index"], list(encoded.shape))
            self.interpreter.allocate_tensors()
            self._rows = len(encoded)
        self.interpreter.set_tensor(self._input["index"], encoded)
        self.interpreter.invoke()
        return np.asarray(self.interpreter.get_tensor(self._output["index"]), dtype="float64")

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = self.run(frame)
        if self.kind == "classifier":
            return confidence_frame(out, list(self.schema.classes or ()), frame.index)
        return interval_frame(out[:, 0], self.meta.get("interval_half_width"), frame.index)

    def _predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.kind != "classifier":
            return super()._predict_proba(frame)
        return pd.DataFrame(self.run(frame), columns=[str(c) for c in self.schema.classes or ()], index=frame.index)

    def _save_payload(self, path: Path) -> None:
        raise ModelError("a TFLite export is already saved", allowed="a native model to save", got=str(self.path),
                         fix="copy the export folder")

    @classmethod
    def _load_payload(cls, path: Path, *, kind: Any, schema: Schema, meta: dict[str, Any]) -> TfliteModel:
        raise ModelError("a TFLite export is not a model folder", allowed="a keras model folder", got=str(path),
                         fix="load the keras model it came from")
