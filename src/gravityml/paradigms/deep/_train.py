"""Supervised deep learning: rows -> encoder -> network -> :func:`fit_torch` -> a TorchModel."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gravityml.data import Dataset
from gravityml.errors import SpecError, TrainingError
from gravityml.models._nets import DEFAULTS, build_network
from gravityml.models._torch import TorchEncoder, TorchModel, image_layout
from gravityml.paradigms import _plots
from gravityml.paradigms._base import TrainContext, TrainResult, require_two_classes
from gravityml.paradigms._metrics import classification_metrics, conformal_half_width, prefixed, regression_metrics
from gravityml.paradigms.deep._loop import FitResult, class_weights, fit_torch, seed_everything
from gravityml.paradigms.deep._own import importable, input_arch, own_config
from gravityml.paradigms.supervised._train import check_calibrate
from gravityml.schema import Schema
from gravityml.spec import JobSpec, did_you_mean

#: The networks gravityml builds (their last Linear layer is the output layer).
BUILT_IN = ("mlp", "cnn", "text")

#: Rows kept aside for validation when the spec asks for early stopping or a plateau schedule
#: but gives no validation split.
AUTO_VALIDATION = 0.1


@dataclass
class Prepared:
    """A job's rows, encoded once: what every precision and every retry trains on."""

    arch: str
    params: dict[str, Any]
    schema: Schema
    encoder: TorchEncoder
    problem: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    test_frame: pd.DataFrame
    y_test: pd.Series
    train_frame: pd.DataFrame
    y_train_raw: pd.Series
    config: dict[str, Any]
    target_mean: float = 0.0
    target_std: float = 1.0
    notes: dict[str, str] = field(default_factory=dict)


def resolve_params(arch: str, given: dict[str, Any]) -> dict[str, Any]:
    allowed = sorted(DEFAULTS[arch])
    unknown = [k for k in given if k not in DEFAULTS[arch]]
    if unknown:
        raise TrainingError(
            f"model.params: {unknown[0]!r} is not a parameter of the {arch} network{did_you_mean(unknown[0], allowed)}",
            allowed=allowed,
            got=unknown[0],
            fix="use one of the allowed names (docs/deep-learning.md lists them)",
        )
    return {**DEFAULTS[arch], **given}


def _check_inputs(arch: str, schema: Schema, spec: JobSpec) -> None:
    if arch == "cnn" and image_layout(schema.feature_names) is None:
        raise TrainingError(
            "model.type: cnn needs image rows (pixel_R_C or pixel_K_R_C columns)",
            got=schema.feature_names[:5],
            fix="use an image folder (data.source: path/to/folder) or sklearn:digits, or model.type: mlp for tables",
        )
    text = schema.columns_of("text")
    if arch == "text" and len(text) != 1:
        raise TrainingError(
            "model.type: text needs exactly one text column",
            got=text,
            fix="set data.text to the column that holds the text, and data.features: [that column]",
        )
    if arch != "text" and text:
        raise TrainingError(
            f"model.type: {arch} does not read free text (column {text[0]!r})",
            allowed=["text"],
            got=arch,
            fix="use model.type: text, or leave the column out of data.features",
        )


def _stats(arch: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if arch == "cnn":  # one scale for every pixel: per-pixel statistics would erase empty borders
        values = X.astype("float64")
        return np.zeros(1), np.array([np.nanmean(values)]), np.array([max(float(np.nanstd(values)), 1e-6)])
    with np.errstate(all="ignore"):
        fill = np.nan_to_num(np.nanmedian(X.astype("float64"), axis=0)) if len(X) else np.zeros(X.shape[1])
        filled = np.where(np.isnan(X), fill, X)
        mean, std = filled.mean(axis=0), filled.std(axis=0)
    return fill, mean, np.where(std > 1e-8, std, 1.0)


def prepare(spec: JobSpec, dataset: Dataset, *, max_rows: int | None = None) -> Prepared:
    """Split, validate, encode. ``max_rows`` trains on a seeded slice (the precision check)."""
    schema = dataset.schema()
    own = spec.model.type == "torch"  # your own module: the encoder follows the rows it gets
    if own:
        importable(spec)
    arch = input_arch(schema) if own else spec.model.type
    params = dict(spec.model.params) if own else resolve_params(arch, dict(spec.model.params))
    _check_inputs(arch, schema, spec)
    require_two_classes(dataset, schema)
    split = dataset.split()
    train, validation = split.train, split.validation
    if max_rows is not None and len(train) > max_rows:
        train = train.sample(n=max_rows, random_state=spec.train.seed)
    needs_validation = spec.train.patience is not None or spec.train.lr_schedule == "plateau" or spec.train.calibrate != "none"
    if validation is None and needs_validation:
        from gravityml.data._dataset import _split

        stratify = dataset.target if dataset.problem == "classification" else None
        train, validation = _split(train, AUTO_VALIDATION, spec.data.split.seed + 1 if spec.data else 8, stratify)
    assert dataset.target is not None
    frames = {k: schema.validate(v[dataset.features]) for k, v in (("train", train), ("test", split.test))}
    notes: dict[str, str] = {}
    if arch == "text" and not own:
        params, notes = size_max_tokens(params, frames["train"][schema.columns_of("text")[0]], "max_tokens" in spec.model.params)
    encoder = TorchEncoder.fit(arch, schema, frames["train"], {**DEFAULTS["text"], **params} if own else params)
    X_train = encoder.transform(frames["train"])
    X_val = encoder.transform(schema.validate(validation[dataset.features])) if validation is not None else None
    classes = list(schema.classes or ())
    mean, std = 0.0, 1.0
    if dataset.problem == "classification":
        index = {c: i for i, c in enumerate(classes)}

        def targets(s: pd.Series) -> np.ndarray:
            return np.array([index[v.item() if hasattr(v, "item") else v] for v in s], dtype="int64")

        n_out = len(classes)
    else:
        raw = train[dataset.target].to_numpy(dtype="float64")
        mean, std = float(raw.mean()), float(raw.std()) or 1.0

        def targets(s: pd.Series) -> np.ndarray:
            return ((s.to_numpy(dtype="float64") - mean) / std).reshape(-1, 1)

        n_out = 1
    config: dict[str, Any] = {"arch": arch, "params": params, "n_outputs": n_out}
    if arch == "mlp":
        config["n_inputs"] = encoder.width
    elif arch == "cnn":
        config["shape"] = encoder.shape
    else:
        config["vocab_size"] = len(encoder.vocabulary)
    if own:
        config = own_config(spec, encoder, str(dataset.problem), n_out)
    return Prepared(
        arch=arch,
        params=params,
        schema=schema,
        encoder=encoder,
        problem=str(dataset.problem),
        X_train=X_train,
        y_train=targets(train[dataset.target]),
        X_val=X_val,
        y_val=targets(validation[dataset.target]) if validation is not None else None,
        test_frame=frames["test"],
        y_test=split.test[dataset.target],
        train_frame=frames["train"],
        y_train_raw=train[dataset.target],
        config=config,
        target_mean=mean,
        target_std=std,
        notes=notes,
    )


#: The loop a built-in network gets when the spec leaves ``train.epochs`` at its default and sets no
#: ``patience``: up to this many epochs, stopped after ``AUTO_PATIENCE`` without a better val/loss
#: (on ``AUTO_VALIDATION`` of the training rows), best weights kept, cosine learning rate. On
#: sklearn:digits (3 splits) the mlp reached 0.980 test accuracy this way against 0.974 with 20
#: constant-rate epochs and 0.978 for scikit-learn's MLPClassifier (docs/deep-learning.md).
AUTO_MAX_EPOCHS = 100
AUTO_PATIENCE = 5


def with_loop_defaults(ctx: TrainContext) -> tuple[TrainContext, dict[str, str]]:
    """``ctx`` with the early-stopping loop above where the spec chose none, and the tag saying so."""
    from dataclasses import replace

    cfg = ctx.spec.train
    if ctx.spec.model.type not in BUILT_IN or {"epochs", "patience"} & cfg.model_fields_set or cfg.patience is not None:
        return ctx, {}
    update: dict[str, Any] = {"epochs": AUTO_MAX_EPOCHS, "patience": AUTO_PATIENCE}
    if cfg.lr_schedule == "constant":
        update["lr_schedule"] = "cosine"
    train = cfg.model_copy(update=update)
    note = (
        f"train.epochs and train.patience not set: up to {AUTO_MAX_EPOCHS} epochs, early stopping after {AUTO_PATIENCE}"
        f" without a better val/loss, lr_schedule {train.lr_schedule}; set train.epochs or train.patience to choose"
    )
    return replace(ctx, spec=ctx.spec.model_copy(update={"train": train})), {"loop.defaults": note}


#: Longest default ``max_tokens`` sized from the data (the pooled embedding's cost grows with it).
MAX_TOKENS_CAP = 512


def size_max_tokens(params: dict[str, Any], texts: pd.Series, given: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """``max_tokens`` sized from the training documents when the spec does not set it (the longest
    one, at most :data:`MAX_TOKENS_CAP`, at least 8), and a warning naming the share of training
    documents cut at it when any are."""
    from gravityml.errors import GravityMLWarning
    from gravityml.models._torch import tokenize

    lengths = np.array([len(tokenize(t)) for t in texts], dtype="int64")
    if not given:
        params = {**params, "max_tokens": int(min(MAX_TOKENS_CAP, max(8, lengths.max(initial=0))))}
    limit = int(params["max_tokens"])
    cut = float((lengths > limit).mean()) if len(lengths) else 0.0
    notes = {"text.max_tokens": f"{limit} ({'set in model.params' if given else 'sized from the longest training document'})"}
    if cut > 0:
        notes["text.cut_documents"] = f"{cut:.1%} of training documents are longer than max_tokens={limit} and are cut"
        warnings.warn(
            f"model.params.max_tokens: {cut:.1%} of the training documents are longer than {limit} tokens and are cut"
            f" (longest: {int(lengths.max())}); raise max_tokens to read them whole",
            GravityMLWarning,
            stacklevel=3,
        )
    return params, notes


def build(prep: Prepared, seed: int) -> Any:
    """A freshly initialised network (seeded) with the normalisation buffers set from the data."""
    import torch

    seed_everything(seed)
    try:
        network = build_network(prep.config)
    except (RuntimeError, ValueError, TypeError) as exc:  # torch refused a size from model.params (hidden: [-4])
        params = {k: v for k, v in dict(prep.config.get("params") or {}).items()}
        raise SpecError(
            "model.params",
            f"the {prep.arch} network cannot be built: {str(exc).splitlines()[0]}",
            allowed="positive layer sizes and counts, dropout in [0, 1)",
            got=params,
            fix="correct model.params (see `gravityml validate JOB.yaml` for each parameter)",
        ) from None
    if hasattr(network, "standardize"):
        fill, mean, std = _stats(prep.arch, prep.X_train)
        with torch.no_grad():
            network.standardize.fill.copy_(torch.from_numpy(fill).float())
            network.standardize.mean.copy_(torch.from_numpy(mean).float())
            network.standardize.std.copy_(torch.from_numpy(std).float())
    return network


def fit_prepared(ctx: TrainContext, prep: Prepared, precision: str, **kwargs: Any) -> FitResult:
    spec = ctx.spec
    network = build(prep, spec.train.seed)
    weights = None
    if prep.problem == "classification" and spec.train.class_weight == "balanced":
        weights = class_weights(prep.y_train, prep.config["n_outputs"])
    return fit_torch(
        ctx,
        network,
        prep.X_train if prep.arch == "text" else prep.X_train.astype("float32"),
        prep.y_train if prep.problem == "classification" else prep.y_train.astype("float32"),
        X_val=prep.X_val if prep.X_val is None or prep.arch == "text" else prep.X_val.astype("float32"),
        y_val=prep.y_val,
        loss="cross_entropy" if prep.problem == "classification" else "mse",
        weights=weights,
        precision=precision,
        **kwargs,
    )


def to_model(ctx: TrainContext, prep: Prepared, fit: FitResult) -> TorchModel:
    meta: dict[str, Any] = {
        "task": "supervised",
        "model_type": ctx.spec.model.type,
        "problem": prep.problem,
        "precision": fit.precision,
        "network": prep.config,
    }
    if prep.encoder.input == "image":
        meta["image"] = {"shape_chw": prep.encoder.shape, "value_max": prep.encoder.value_max}
    kind = "classifier" if prep.problem == "classification" else "regressor"
    if kind == "regressor":
        meta.update(target_mean=prep.target_mean, target_std=prep.target_std)
    model = TorchModel(fit.network.cpu(), prep.encoder, kind=kind, schema=prep.schema, meta=meta)  # type: ignore[arg-type]
    if kind == "regressor":
        pred = model.predict(prep.test_frame)["prediction"].to_numpy()
        model.meta["interval_half_width"] = conformal_half_width(prep.y_test, pred)
        model.meta["interval_coverage"] = 0.9
    return model


def evaluate(model: TorchModel, prep: Prepared, split: str = "test") -> tuple[dict[str, float], np.ndarray]:
    """``split`` metrics of ``model``, and its outputs (probabilities or predictions)."""
    frame, y = (prep.test_frame, prep.y_test) if split == "test" else (prep.train_frame, prep.y_train_raw)
    if prep.problem == "classification":
        proba = model.predict_proba(frame).to_numpy()
        # Labels as text: scikit-learn's metrics call an object array of integers "unknown".
        labels = [str(c) for c in prep.schema.classes or ()]
        return prefixed(split, classification_metrics(y.astype(str), proba, labels)), proba
    pred = model.predict(frame)["prediction"].to_numpy()
    return prefixed(split, regression_metrics(y, pred)), pred


def train(ctx: TrainContext) -> TrainResult:
    """Train a torch-backed supervised model (``mlp``, ``cnn``, ``text``) and evaluate it on test."""
    dataset = ctx.dataset
    assert dataset is not None and dataset.target is not None
    ctx, loop_note = with_loop_defaults(ctx)
    spec = ctx.spec
    # Temperature scaling folds 1/T into the output layer, which only the built-in networks name.
    calibrate = check_calibrate(ctx, ("temperature",) if spec.model.type in BUILT_IN else ())
    prep = prepare(spec, dataset)
    tags: dict[str, str] = {"problem": prep.problem, **prep.notes, **loop_note}
    artifacts = []
    precision = spec.compute.precision
    if precision == "auto":
        from gravityml.paradigms.deep._precision import auto_precision

        precision, reason, report = auto_precision(ctx, dataset)
        tags["precision.auto"] = reason
        artifacts.append(report)
    fit = fit_prepared(ctx, prep, precision)
    tags.update(
        {
            "precision": precision,
            "stopped": fit.stopped,
            "epochs_run": str(fit.epochs_run),
            "best_epoch": str(fit.best_epoch) if fit.best_epoch is not None else "",
        }
    )
    if fit.resumed_from is not None:
        tags["resumed_from_epoch"] = str(fit.resumed_from)
    if fit.devices > 1:
        tags["devices"] = str(fit.devices)
        tags["distributed"] = f"DistributedDataParallel over {fit.devices} processes, global batch {fit.devices} x {spec.train.batch_size}"
        if spec.compute.workers > 1:
            tags["distributed"] = (f"Ray Train TorchTrainer over {spec.compute.workers} workers x {spec.compute.devices} "
                                   f"device(s), global batch {fit.devices} x {spec.train.batch_size}, "
                                   f"max_failures {spec.compute.max_failures}")
    model = to_model(ctx, prep, fit)
    if calibrate == "temperature":
        n_val = len(prep.X_val) if prep.X_val is not None else 0
        ece_before = evaluate(model, prep, "test")[0]["test/ece"]
        temperature = calibrate_temperature(model, prep)
        model.meta["calibration"] = {"method": "temperature", "rows": n_val, "temperature": temperature}
        tags["calibration"] = f"temperature {temperature:.3f} fitted on {n_val} validation rows"
    metrics, outputs = evaluate(model, prep, "test")
    if calibrate == "temperature":
        metrics["test/ece_uncalibrated"] = ece_before
        metrics["model/temperature"] = temperature
        tags["calibration"] += f": test ECE {ece_before:.4f} -> {metrics['test/ece']:.4f}"
    metrics.update(evaluate(model, prep, "train")[0])
    title = f"{spec.name} ({spec.model.type}), test split"
    if prep.problem == "classification":
        classes = list(prep.schema.classes or ())
        pred = np.asarray(classes, dtype=object)[np.argmax(outputs, axis=1)]
        artifacts.append(_plots.confusion_matrix_png(prep.y_test, pred, classes, ctx.workdir / "confusion_matrix.png", title))
        artifacts.append(_plots.roc_curve_png(prep.y_test, outputs, classes, ctx.workdir / "roc_curve.png", title))
        correct = pred.astype(str) == prep.y_test.astype(str).to_numpy()
        artifacts.append(_plots.reliability_png(correct, outputs.max(axis=1), ctx.workdir / "reliability.png", title))
    else:
        artifacts.append(_plots.predicted_vs_actual_png(prep.y_test, outputs, ctx.workdir / "predicted_vs_actual.png", title))
    artifacts.append(_learning_curve(fit, ctx.workdir / "learning_curve.png", title))
    history = ctx.workdir / "history.json"
    history.write_text(json.dumps(fit.history, indent=1), encoding="utf-8")
    artifacts.append(history)
    metrics["data/train_rows"] = float(len(prep.X_train))
    metrics["data/test_rows"] = float(len(prep.test_frame))
    metrics["time/train_samples_per_s"] = fit.samples_per_s
    return TrainResult(
        model=model,
        metrics=metrics,
        artifacts=artifacts,
        params={"network": prep.config, "precision": precision, **({"devices": fit.devices} if fit.devices > 1 else {})},
        tags=tags,
    )


def calibrate_temperature(model: TorchModel, prep: Prepared) -> float:
    """Fit the temperature on the validation rows' logits and fold it into the output layer."""
    import torch

    from gravityml.models._nets import fit_temperature, scale_logits

    assert prep.X_val is not None and prep.y_val is not None
    logits = torch.from_numpy(model.raw_outputs(prep.X_val if prep.arch == "text" else prep.X_val.astype("float32")))
    temperature = fit_temperature(logits, torch.from_numpy(prep.y_val))
    scale_logits(model.network, 1.0 / temperature)
    return temperature


def _learning_curve(fit: FitResult, path: Any, title: str) -> Any:
    plt = _plots._pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [h["epoch"] for h in fit.history]
    for key in ("train/loss", "val/loss"):
        values = [h.get(key) for h in fit.history]
        if any(v is not None for v in values):
            ax.plot(epochs, values, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    return _plots.save_figure(fig, path)
