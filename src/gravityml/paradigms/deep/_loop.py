"""The PyTorch training loop every torch-backed paradigm shares (see :func:`fit_torch`)."""

from __future__ import annotations

import copy
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from gravityml.compute import configure_threads, precision_policy, resolve_device
from gravityml.errors import TrainingError
from gravityml.paradigms._base import TrainContext
from gravityml.paradigms.deep._own import make_criterion, make_optimizer
from gravityml.paradigms.deep._progress import EpochProgress

if TYPE_CHECKING:
    from gravityml.paradigms.deep._ddp import Rank

CHECKPOINT = "checkpoint.pt"
#: ``on_epoch(epoch, metrics, checkpoint file written this epoch or None)``: see :func:`fit_torch`.
EpochHook = Callable[[int, dict[str, float], "Path | None"], None]
#: Training time between two checkpoints, as a multiple of what the last checkpoint took to write.
CHECKPOINT_SHARE = 30.0


@dataclass
class FitResult:
    """A trained network (best validation weights when there was a validation set) and its story."""

    network: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    epochs_run: int = 0
    best_epoch: int | None = None
    stopped: str = "completed all epochs"
    resumed_from: int | None = None
    samples_per_s: float = 0.0
    precision: str = "fp32"
    devices: int = 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every device) so a run is repeatable on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """'balanced' weights n / (k * count_c), as scikit-learn's compute_class_weight does."""
    counts = np.bincount(y, minlength=n_classes).astype("float64")
    return len(y) / (n_classes * np.maximum(counts, 1.0))


def _scheduler(kind: str, optimizer: torch.optim.Optimizer, epochs: int, patience: int | None) -> Any:
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=max(1, (patience or 4) // 2))
    return None


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "shuffle": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary file, fsync, then rename: a kill leaves the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def fit_torch(
    ctx: TrainContext,
    network: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    loss: str = "cross_entropy",
    weights: np.ndarray | None = None,
    precision: str | None = None,
    epochs: int | None = None,
    checkpoint: bool = True,
    extra_metrics: Callable[[nn.Module], dict[str, float]] | None = None,
    rank: Rank | None = None,
    on_epoch: EpochHook | None = None,
) -> FitResult:
    """Train ``network`` on ``X``/``y`` with the settings of ``ctx.spec.train`` and ``ctx.spec.compute``.

    Reusable by any paradigm: an autoencoder passes ``y=X`` and ``loss="mse"``. ``X`` is float
    (or int64 token ids), ``y`` int64 class indices for ``cross_entropy`` or float targets for
    ``mse``. What it does, per epoch:

    * shuffles with its own seeded generator, runs batches under the precision policy
      (``torch.autocast`` for bf16/fp16, a GradScaler for fp16, float64 parameters for fp64),
      clips the gradient norm (``train.grad_clip``) and steps the LR schedule (``train.lr_schedule``);
    * evaluates ``val/loss`` (and ``val/accuracy``) when ``X_val`` is given, keeps the best
      weights, and stops early after ``train.patience`` epochs without improvement;
    * reports ``train/loss``, ``val/*``, ``train/lr`` and ``time/samples_per_s`` to ``ctx.sink``
      with ``step=epoch``, and draws a progress bar on a terminal;
    * writes an atomic checkpoint (network, optimiser, scheduler, scaler, RNG states, epoch, best
      weights) to ``ctx.checkpoint_dir`` after the first and the last epoch, on a stop, and in
      between once ``CHECKPOINT_SHARE`` times the last write's duration has passed; with ``ctx.resume`` it continues from that checkpoint and
      ends exactly where an uninterrupted run would;
    * polls ``ctx.should_stop()``: a reason checkpoints, stops, and lands in ``FitResult.stopped``.

    The caller seeds (:func:`seed_everything`) before it builds ``network``, so initial weights
    are repeatable too.

    With ``compute.devices`` > 1 it trains data-parallel (see :mod:`._ddp`): N processes, each
    runs this function with its ``rank`` on a :class:`~torch.utils.data.DistributedSampler`
    shard of ``batch_size`` rows per step (a global batch of N x ``batch_size``); rank 0 alone
    checkpoints and reports, and its weights come back in ``network``. With ``compute.workers`` > 1
    the same happens in Ray Train's workers on a Ray site's cluster (see :mod:`._raytrain`).

    ``on_epoch(epoch, metrics, checkpoint)`` is called on every rank at the end of every epoch,
    with the checkpoint file this rank wrote in that epoch (or None): Ray Train's workers report
    through it.
    """
    spec = ctx.spec
    cfg = spec.train
    epochs = epochs or cfg.epochs
    placement = resolve_device(spec.compute.accelerator, spec.compute.devices)
    name = precision or spec.compute.precision
    if name == "auto":
        raise TrainingError("fit_torch needs a concrete precision", got="auto", fix="resolve auto first")
    if rank is None and spec.compute.workers > 1:
        from gravityml.paradigms.deep._raytrain import fit_ray_train

        return fit_ray_train(ctx, network, {"X": X, "y": y, "X_val": X_val, "y_val": y_val},
                             {"loss": loss, "weights": weights, "precision": name, "epochs": epochs,
                              "checkpoint": checkpoint})
    if rank is None and placement.count > 1:
        from gravityml.paradigms.deep._ddp import fit_distributed

        options = {"loss": loss, "weights": weights, "precision": name, "epochs": epochs,
                   "checkpoint": checkpoint, "extra_metrics": extra_metrics}
        fit: FitResult = fit_distributed(ctx, network, placement, {"X": X, "y": y, "X_val": X_val, "y_val": y_val}, options)
        fit.network = fit.network.to(device=torch.device(placement.torch_device),
                                     dtype=precision_policy(name, placement).torch_param_dtype()).eval()
        return fit
    configure_threads(placement, spec.compute.threads if rank is None else rank.threads(spec.compute.threads))
    policy = precision_policy(name, placement)
    device = torch.device(placement.torch_device) if rank is None else rank.device(placement)
    dtype = policy.torch_param_dtype()
    on_cuda = placement.kind == "cuda"

    def tensor(array: np.ndarray, *, target: bool = False) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(array))
        if t.is_floating_point():
            t = t.to(dtype)
        # Pinned host memory lets the per-batch copies below overlap with compute on CUDA.
        return t.pin_memory() if on_cuda else t

    Xt, yt = tensor(X), tensor(y, target=True)
    Xv = tensor(X_val) if X_val is not None else None
    yv = tensor(y_val, target=True) if y_val is not None else None
    network = network.to(device=device, dtype=dtype)
    optimizer = make_optimizer(ctx.spec, network.parameters(), cfg.lr, cfg.weight_decay)  # model.optimizer, AdamW default
    scheduler = _scheduler(cfg.lr_schedule, optimizer, epochs, cfg.patience)
    scaler = policy.grad_scaler()
    w = torch.as_tensor(weights, dtype=dtype, device=device) if weights is not None else None
    criterion: nn.Module = make_criterion(ctx.spec, loss, w)  # model.loss, else cross-entropy / MSE
    generator = torch.Generator().manual_seed(cfg.seed)

    result = FitResult(network=network, precision=name, devices=rank.world if rank is not None else 1)
    lead = rank is None or rank.lead
    best_value, best_state, bad_epochs, start = float("inf"), None, 0, 0
    ckpt_path = Path(ctx.checkpoint_dir) / CHECKPOINT if (checkpoint and ctx.checkpoint_dir) else None
    trainer = network
    if ckpt_path is not None and ctx.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], generator)
        best_value, best_state, bad_epochs = state["best_value"], state["best_state"], state["bad_epochs"]
        result.history, result.best_epoch = state["history"], state["best_epoch"]
        start = result.resumed_from = state["epoch"] + 1
        if state.get("stopped_by"):
            start = epochs  # the run had already finished its loop; only the end remains
            result.stopped = state["stopped_by"]
    if rank is not None:
        trainer = rank.wrap(network, device)

    n = len(Xt)
    seen, busy = 0, 0.0
    # Checkpoints cost at most ~1/CHECKPOINT_SHARE of training time: a big network's optimiser state
    # (75 MB for a 1024-2048-2048 MLP, 0.4-2 s with fsync) after every short epoch costs 10-30%.
    # The first epoch and the last one, and any stop, always write one.
    last_save, save_cost = time.perf_counter(), 0.0
    progress = EpochProgress(spec.name, epochs, start) if lead else None
    try:
        for epoch in range(start, epochs):
            network.train()
            if rank is None:
                order = torch.randperm(n, generator=generator)
            else:
                order = rank.shard(n, cfg.seed, epoch)
                rank.reseed(cfg.seed, epoch)
            total, began = 0.0, time.perf_counter()
            for begin in range(0, len(order), cfg.batch_size):
                idx = order[begin : begin + cfg.batch_size]
                xb = Xt[idx].to(device, non_blocking=True)
                yb = yt[idx].to(device, non_blocking=True)
                with policy.autocast():
                    out = trainer(xb)
                # The loss itself runs in the parameter dtype: low-precision softmax/MSE sums lose digits.
                batch_loss = criterion(out.to(dtype), yb if loss == "cross_entropy" else yb.reshape(out.shape).to(dtype))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(batch_loss).backward()
                if cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(network.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                total += float(batch_loss.detach()) * len(idx)
            if on_cuda:
                torch.cuda.synchronize()
            rows = float(n)
            if rank is not None:  # the mean over every rank's rows, the same number on each rank
                total, rows = rank.sum(total, float(len(order)), device=device)
            busy += time.perf_counter() - began
            seen += n
            metrics = {"train/loss": total / rows, "train/lr": optimizer.param_groups[0]["lr"]}
            if Xv is not None and yv is not None:
                metrics.update(_evaluate(network, criterion, Xv, yv, loss, policy, device, dtype, cfg.batch_size))
                if extra_metrics is not None:
                    metrics.update(extra_metrics(network))
                if metrics["val/loss"] < best_value - 1e-12:
                    best_value, bad_epochs, result.best_epoch = metrics["val/loss"], 0, epoch
                    best_state = copy.deepcopy(network.state_dict())
                else:
                    bad_epochs += 1
            metrics["time/samples_per_s"] = n / max(time.perf_counter() - began, 1e-9)
            if scheduler is not None:
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(metrics.get("val/loss", metrics["train/loss"]))
                else:
                    scheduler.step()
            result.history.append({"epoch": float(epoch), **metrics})
            if lead:
                ctx.sink.log_metrics(metrics, step=epoch)
            if progress is not None:
                progress.update(epoch, metrics)
            stop = None
            if cfg.patience is not None and Xv is not None and bad_epochs >= cfg.patience:
                stop = f"early stopping: val/loss did not improve for {cfg.patience} epochs (best epoch {result.best_epoch})"
            reason = ctx.should_stop()
            if reason:
                stop = f"stopped by request: {reason}"
            if rank is not None:
                stop = rank.agree(stop)
            due = epoch in (start, epochs - 1) or stop or time.perf_counter() - last_save >= CHECKPOINT_SHARE * save_cost
            if ckpt_path is not None and lead and due:
                saving = time.perf_counter()
                save_checkpoint(
                    ckpt_path,
                    {
                        "epoch": epoch,
                        "network": network.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "scaler": scaler.state_dict(),
                        "rng": _rng_state(generator),
                        "best_value": best_value,
                        "best_state": best_state,
                        "best_epoch": result.best_epoch,
                        "bad_epochs": bad_epochs,
                        "history": result.history,
                        "precision": name,
                        "stopped_by": stop,
                        "resumed_from": result.resumed_from,
                    },
                )
                last_save, save_cost = time.perf_counter(), time.perf_counter() - saving
                saved: Path | None = ckpt_path
            else:
                saved = None
            if on_epoch is not None:
                on_epoch(epoch, metrics, saved)
            if stop:
                result.stopped = stop
                break
    finally:
        if progress is not None:
            progress.close()
    if best_state is not None:
        network.load_state_dict(best_state)
    result.epochs_run = len(result.history)
    result.samples_per_s = seen / busy if busy > 0 else 0.0
    network.eval()
    return result


def _evaluate(
    network: nn.Module,
    criterion: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    policy: Any,
    device: torch.device,
    dtype: torch.dtype,
    batch_size: int,
) -> dict[str, float]:
    network.eval()
    total, correct = 0.0, 0
    with torch.inference_mode():
        for begin in range(0, len(X), max(batch_size, 1024)):
            xb = X[begin : begin + max(batch_size, 1024)].to(device, non_blocking=True)
            yb = y[begin : begin + max(batch_size, 1024)].to(device, non_blocking=True)
            with policy.autocast():
                out = network(xb)
            out = out.to(dtype)
            if loss == "cross_entropy":
                total += float(criterion(out, yb)) * len(xb)
                correct += int((out.argmax(dim=1) == yb).sum())
            else:
                total += float(criterion(out, yb.reshape(out.shape).to(dtype))) * len(xb)
    metrics = {"val/loss": total / len(X)}
    if loss == "cross_entropy":
        metrics["val/accuracy"] = correct / len(X)
    return metrics
