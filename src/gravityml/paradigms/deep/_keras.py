"""Supervised deep learning on TensorFlow: rows -> encoder -> a Keras network -> ``model.fit`` -> a KerasModel.

Trains ``model.type: keras`` (your Keras model by entry point) and the built-in ``mlp``, ``cnn`` and
``text`` with ``model.framework: tensorflow``. The rows are split, validated and encoded exactly as for the
torch networks (text: the platform's tokenizer and the vocabulary built from the training rows, with
``max_tokens`` sized from them when the spec does not set it) (:func:`gravityml.paradigms.deep._train.prepare`), so both frameworks see the same
training, validation and test rows. What the platform adds around Keras' own ``fit``:

* precision from ``compute.precision`` as a Keras dtype policy (bf16 -> ``mixed_bfloat16``,
  fp16 -> ``mixed_float16``, fp64 -> ``float64``; ``auto`` measures each policy on a slice of the
  rows and picks the cheapest within tolerance, as for the torch networks);
* the device from ``compute.accelerator`` (``cpu`` pins ``/CPU:0``, ``cuda`` needs a GPU that
  TensorFlow sees), threads from ``compute.threads``;
* the loop's settings from ``train``: epochs, batch size, lr and its schedule, weight decay
  (AdamW), gradient clipping, balanced class weights, early stopping on ``val/loss`` with the
  best weights kept (the torch loop's defaults when the spec sets no epochs and no patience);
* per-epoch metrics to the job's sink (``train/loss``, ``val/loss``, ``val/accuracy``,
  ``train/lr``, ``time/samples_per_s``, with ``step=epoch``), the run's ``should_stop`` polled;
* a checkpoint after every epoch in ``ctx.checkpoint_dir`` (weights and optimizer state, epoch,
  history, best weights, patience count), atomically; ``ctx.resume`` continues from it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gravityml.data import Dataset
from gravityml.errors import ComputeError, TrainingError
from gravityml.models._keras import KerasModel, build_keras_network, dtype_policy, keras_module, set_standardize
from gravityml.paradigms import _plots
from gravityml.paradigms._base import TrainContext, TrainResult
from gravityml.paradigms._metrics import conformal_half_width
from gravityml.paradigms.deep._loop import FitResult
from gravityml.paradigms.deep._train import Prepared, _learning_curve, _stats, evaluate, prepare, with_loop_defaults
from gravityml.paradigms.supervised._train import check_calibrate
from gravityml.spec import JobSpec

CHECKPOINT_DIR = "keras"
WEIGHTS = "checkpoint.weights.h5"
BEST = "best.npz"
STATE = "state.json"
#: Encoded training rows stored with the model for int8 TFLite calibration.
REPRESENTATIVE_ROWS = 256
OPTIMIZERS = ("adamw", "adam", "sgd")


def _device(accelerator: str) -> contextlib.AbstractContextManager[Any]:
    """``compute.accelerator`` as a TensorFlow device scope (auto: TensorFlow's own choice)."""
    import tensorflow as tf

    if accelerator == "cpu":
        return tf.device("/CPU:0")
    if accelerator in ("cuda", "mps"):
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            raise ComputeError(
                f"compute.accelerator: {accelerator!r}: TensorFlow sees no GPU on this machine",
                allowed=["auto", "cpu"],
                got=accelerator,
                fix="use accelerator: auto (or cpu), or install the CUDA build of TensorFlow (tensorflow[and-cuda])",
            )
        return tf.device("/GPU:0")
    return contextlib.nullcontext()


def _threads(threads: int | None) -> None:
    import tensorflow as tf

    if not threads:
        return
    with contextlib.suppress(RuntimeError):  # TensorFlow fixes its pools at first use; later calls are refused
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))


def _optimizer(keras: Any, ctx: TrainContext) -> Any:
    cfg = ctx.spec.train
    clip = {"clipnorm": float(cfg.grad_clip)} if cfg.grad_clip else {}
    name = ctx.spec.model.optimizer or "adamw"
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay or None, **clip)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=cfg.lr, weight_decay=cfg.weight_decay or None, **clip)
    return keras.optimizers.AdamW(learning_rate=cfg.lr, weight_decay=cfg.weight_decay, **clip)


def _schedule(kind: str, lr: float, epochs: int) -> Any:
    """The learning rate of epoch ``e`` (a function of the epoch alone, so a resumed run continues it)."""
    if kind == "cosine":
        return lambda e, _lr: lr * 0.5 * (1.0 + math.cos(math.pi * e / max(epochs, 1)))
    if kind == "step":
        return lambda e, _lr: lr * 0.1 ** (e // max(1, epochs // 3))
    return None


def _save_weights(network: Any, path: Path) -> None:
    """Weights and optimizer state to ``path`` (HDF5: ``weights/i``, ``optimizer/i``) through a
    temporary file and a rename. The arrays are written directly: Keras' ``save_weights`` walks the
    object graph and took 0.03-0.04 CPU-s per checkpoint for a 50k-parameter MLP, 5% of its epochs."""
    import h5py

    weights = network.get_weights()
    state = [np.asarray(v) for v in network.optimizer.variables]
    tmp = path.with_name(f".{os.getpid()}.tmp.weights.h5")
    with h5py.File(tmp, "w") as fh:
        for group, arrays in (("weights", weights), ("optimizer", state)):
            folder = fh.create_group(group)
            for i, array in enumerate(arrays):
                folder.create_dataset(str(i), data=array)
    os.replace(tmp, path)


def _load_weights(network: Any, path: Path) -> None:
    """What :func:`_save_weights` wrote back into ``network`` and its (built) optimizer."""
    import h5py

    network.optimizer.build(network.trainable_variables)
    with h5py.File(path, "r") as fh:
        if "weights" not in fh:  # a checkpoint written by Keras' own save_weights
            network.load_weights(str(path))
            return
        weights = [fh["weights"][str(i)][()] for i in range(len(fh["weights"]))]
        state = [fh["optimizer"][str(i)][()] for i in range(len(fh["optimizer"]))]
    network.set_weights(weights)
    for variable, value in zip(network.optimizer.variables, state, strict=True):
        variable.assign(value)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from gravityml._files import atomic_write_text

    atomic_write_text(path, json.dumps(data))


def _save_best(path: Path, weights: list[np.ndarray]) -> None:
    from gravityml._files import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, *weights)

    atomic_write(path, write)


def _load_best(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


class _State:
    """What survives a crash: the epoch reached, history, best weights, patience count, the stop."""

    def __init__(self) -> None:
        self.epoch = -1
        self.history: list[dict[str, float]] = []
        self.best_value = float("inf")
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.bad_epochs = 0
        self.stopped: str | None = None
        self.busy = 0.0
        self.seen = 0
        self.resumed_from: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("epoch", "history", "best_value", "best_epoch", "bad_epochs", "stopped", "busy", "seen")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _State:
        state = cls()
        for key, value in data.items():
            setattr(state, key, value)
        return state


def _callback(keras: Any, ctx: TrainContext, state: _State, folder: Path | None, n_rows: int, validating: bool) -> Any:
    patience = ctx.spec.train.patience

    class Platform(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        """Metrics to the sink, early stopping with best weights, stop requests, checkpoints."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._began = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = dict(logs or {})
            took = time.perf_counter() - self._began
            state.busy += took
            state.seen += n_rows
            metrics = {"train/loss": float(logs["loss"]), "train/lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))}
            if "accuracy" in logs:
                metrics["train/accuracy"] = float(logs["accuracy"])
            if "val_loss" in logs:
                metrics["val/loss"] = float(logs["val_loss"])
            if "val_accuracy" in logs:
                metrics["val/accuracy"] = float(logs["val_accuracy"])
            metrics["time/samples_per_s"] = n_rows / max(took, 1e-9)
            if validating:
                if metrics["val/loss"] < state.best_value - 1e-12:
                    state.best_value, state.bad_epochs, state.best_epoch = metrics["val/loss"], 0, epoch
                    state.best_weights = self.model.get_weights()
                    if folder is not None:
                        _save_best(folder / BEST, state.best_weights)
                else:
                    state.bad_epochs += 1
            state.history.append({"epoch": float(epoch), **metrics})
            state.epoch = epoch
            ctx.sink.log_metrics(metrics, step=epoch)
            stop = None
            if patience is not None and validating and state.bad_epochs >= patience:
                stop = f"early stopping: val/loss did not improve for {patience} epochs (best epoch {state.best_epoch})"
            reason = ctx.should_stop()
            if reason:
                stop = f"stopped by request: {reason}"
            if stop:
                state.stopped = stop
                self.model.stop_training = True
            if folder is not None:
                _save_weights(self.model, folder / WEIGHTS)
                _write_json(folder / STATE, state.to_json())

    return Platform()


@contextlib.contextmanager
def _quiet_tf() -> Iterator[None]:
    import logging

    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def fit_keras(ctx: TrainContext, prep: Prepared, config: dict[str, Any], precision: str) -> tuple[Any, _State]:
    """Build the network at ``precision``'s policy, train it, return it (best weights) and its story."""
    keras = keras_module()
    spec, cfg = ctx.spec, ctx.spec.train
    _threads(spec.compute.threads)
    keras.utils.set_random_seed(cfg.seed)
    classify = prep.problem == "classification"
    text = prep.encoder.input == "text"
    X = prep.X_train if text else prep.X_train.astype("float32")
    y = prep.y_train if classify else prep.y_train.astype("float32")
    validation = None
    if prep.X_val is not None and prep.y_val is not None:
        Xv = prep.X_val if text else prep.X_val.astype("float32")
        validation = (Xv, prep.y_val if classify else prep.y_val.astype("float32"))
    folder = Path(ctx.checkpoint_dir) / CHECKPOINT_DIR if ctx.checkpoint_dir else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    with _device(spec.compute.accelerator), dtype_policy(precision), _quiet_tf():
        try:
            network = build_keras_network(config)
        except (ValueError, TypeError) as exc:  # Keras refused a size from model.params, or your factory's network
            raise TrainingError(
                f"the {config['arch']} Keras network cannot be built: {str(exc).splitlines()[0]}",
                allowed="positive layer sizes and counts, dropout in [0, 1), a factory whose network takes the input",
                got=dict(config.get("params") or {}),
                fix="correct model.params (see `gravityml validate JOB.yaml` for each parameter)",
            ) from None
        if not text:
            set_standardize(network, *_stats(prep.arch, prep.X_train))
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True) if classify else keras.losses.MeanSquaredError()
        network.compile(optimizer=_optimizer(keras, ctx), loss=loss, metrics=["accuracy"] if classify else None)
        state, start = _State(), 0
        if folder is not None and ctx.resume and (folder / STATE).exists() and (folder / WEIGHTS).exists():
            state = _State.from_json(json.loads((folder / STATE).read_text(encoding="utf-8")))
            _load_weights(network, folder / WEIGHTS)
            if (folder / BEST).exists():
                state.best_weights = _load_best(folder / BEST)
            start = cfg.epochs if state.stopped else state.epoch + 1
        elif folder is not None:
            for name in (WEIGHTS, BEST, STATE):
                (folder / name).unlink(missing_ok=True)
        callbacks = [_callback(keras, ctx, state, folder, len(X), validation is not None)]
        schedule = _schedule(cfg.lr_schedule, cfg.lr, cfg.epochs)
        if schedule is not None:
            callbacks.insert(0, keras.callbacks.LearningRateScheduler(schedule))
        elif cfg.lr_schedule == "plateau":
            callbacks.insert(0, keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss" if validation is not None else "loss", patience=max(1, (cfg.patience or 4) // 2)))
        weights = None
        if classify and cfg.class_weight == "balanced":
            from gravityml.paradigms.deep._loop import class_weights

            weights = dict(enumerate(class_weights(prep.y_train, len(prep.schema.classes or ())).tolist()))
        if start < cfg.epochs:
            network.fit(
                X, y, batch_size=cfg.batch_size, epochs=cfg.epochs, initial_epoch=start, validation_data=validation,
                shuffle=True, class_weight=weights, callbacks=callbacks, verbose=0,
            )
    if state.best_weights is not None:
        network.set_weights(state.best_weights)
    if start:
        state.resumed_from = start
    return network, state


def _serving_copy(config: dict[str, Any], network: Any) -> Any:
    """The trained weights in a float32 network: what a saved model loads, so predictions match."""
    with dtype_policy("fp32"):
        copy = build_keras_network(config)
    copy.set_weights([np.asarray(w, dtype="float32") if np.asarray(w).dtype.kind == "f" else w for w in network.get_weights()])
    return copy


def prepare_keras(spec: JobSpec, dataset: Dataset, *, max_rows: int | None = None) -> tuple[Prepared, dict[str, Any]]:
    """The torch networks' preparation (the same split, validation, encoding and statistics) and the
    Keras network's config; your own Keras model is prepared as your own torch module would be."""
    own = spec.model.type == "keras"
    prep_spec = spec.model_copy(update={"model": spec.model.model_copy(update={"type": "torch"})}) if own else spec
    prep = prepare(prep_spec, dataset, max_rows=max_rows)
    return prep, ({**prep.config, "arch": "keras"} if own else dict(prep.config))


def to_keras_model(spec: JobSpec, prep: Prepared, config: dict[str, Any], network: Any, precision: str) -> KerasModel:
    """The trained network as a KerasModel: a float32 copy, its encoder, meta, calibration rows, interval."""
    kind = "classifier" if prep.problem == "classification" else "regressor"
    meta: dict[str, Any] = {
        "task": "supervised",
        "model_type": spec.model.type,
        "framework": "tensorflow",
        "problem": prep.problem,
        "precision": precision,
        "network": config,
    }
    if prep.encoder.input == "image":
        meta["image"] = {"shape_chw": prep.encoder.shape, "value_max": prep.encoder.value_max}
    if kind == "regressor":
        meta.update(target_mean=prep.target_mean, target_std=prep.target_std)
    rng = np.random.default_rng(spec.train.seed)
    take = rng.choice(len(prep.X_train), size=min(REPRESENTATIVE_ROWS, len(prep.X_train)), replace=False)
    model = KerasModel(_serving_copy(config, network), prep.encoder, kind=kind, schema=prep.schema, meta=meta,  # type: ignore[arg-type]
                       representative=prep.X_train[np.sort(take)])
    if kind == "regressor":
        pred = model.predict(prep.test_frame)["prediction"].to_numpy()
        model.meta["interval_half_width"] = conformal_half_width(prep.y_test, pred)
        model.meta["interval_coverage"] = 0.9
    return model


def fit_prepared_keras(
    ctx: TrainContext, prep: Prepared, config: dict[str, Any], precision: str, *, epochs: int | None = None, checkpoint: bool = True
) -> FitResult:
    """:func:`fit_keras` behind the torch loop's ``fit_prepared`` result (what ``gravityml precision`` compares)."""
    if epochs is not None:
        ctx = replace(ctx, spec=ctx.spec.model_copy(update={"train": ctx.spec.train.model_copy(update={"epochs": epochs})}))
    if not checkpoint:
        ctx = replace(ctx, checkpoint_dir=None, resume=False)
    network, state = fit_keras(ctx, prep, config, precision)
    return FitResult(
        network=network, history=state.history, epochs_run=len(state.history), best_epoch=state.best_epoch,
        stopped=state.stopped or "completed all epochs", resumed_from=state.resumed_from,
        samples_per_s=state.seen / state.busy if state.busy > 0 else 0.0, precision=precision,
    )


def train(ctx: TrainContext) -> TrainResult:
    """Train a Keras model (your own by entry point, or the built-in mlp / cnn / text on TensorFlow)."""
    keras_module()  # a missing extra is said before any work
    dataset = ctx.dataset
    assert dataset is not None and dataset.target is not None
    ctx, loop_note = with_loop_defaults(ctx)
    spec = ctx.spec
    check_calibrate(ctx, ())
    prep, config = prepare_keras(spec, dataset)
    tags: dict[str, str] = {"problem": prep.problem, "framework": "tensorflow", **prep.notes, **loop_note}
    artifacts: list[Path] = []
    precision: str = spec.compute.precision
    if precision == "auto":  # measured as for torch: each dtype policy probed and trained on a slice
        from gravityml.paradigms.deep._precision import auto_precision

        if ctx.checkpoint_dir is not None:  # the decision is kept there for a resume
            Path(ctx.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        precision, reason, report = auto_precision(ctx, dataset)
        tags["precision.auto"] = reason
        artifacts.append(report)
    network, state = fit_keras(replace(ctx, spec=spec), prep, config, precision)
    from gravityml.models._keras import POLICIES

    tags.update({
        "precision": precision,
        "keras.dtype_policy": POLICIES[precision],
        "stopped": state.stopped or "completed all epochs",
        "epochs_run": str(len(state.history)),
        "best_epoch": str(state.best_epoch) if state.best_epoch is not None else "",
    })
    if state.resumed_from is not None:
        tags["resumed_from_epoch"] = str(state.resumed_from)
    model = to_keras_model(spec, prep, config, network, precision)
    kind = model.kind
    metrics, outputs = evaluate(model, prep, "test")  # type: ignore[arg-type]
    metrics.update(evaluate(model, prep, "train")[0])  # type: ignore[arg-type]
    title = f"{spec.name} ({spec.model.type}, Keras), test split"
    if kind == "classifier":
        classes = list(prep.schema.classes or ())
        pred = np.asarray(classes, dtype=object)[np.argmax(outputs, axis=1)]
        artifacts.append(_plots.confusion_matrix_png(prep.y_test, pred, classes, ctx.workdir / "confusion_matrix.png", title))
    else:
        artifacts.append(_plots.predicted_vs_actual_png(prep.y_test, outputs.tolist(), ctx.workdir / "predicted_vs_actual.png", title))
    history = ctx.workdir / "history.json"
    history.write_text(json.dumps(state.history, indent=1), encoding="utf-8")
    artifacts += [_learning_curve(state, ctx.workdir / "learning_curve.png", title), history]  # type: ignore[arg-type]
    metrics["data/train_rows"] = float(len(prep.X_train))
    metrics["data/test_rows"] = float(len(prep.test_frame))
    metrics["time/train_samples_per_s"] = state.seen / state.busy if state.busy > 0 else 0.0
    return TrainResult(
        model=model,
        metrics=metrics,
        artifacts=artifacts,
        params={"network": config, "precision": precision, "framework": "tensorflow"},
        tags=tags,
    )
