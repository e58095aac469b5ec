"""Data-parallel training on a Ray site's cluster with Ray Train (``compute.workers: N``, N > 1).

:func:`fit_ray_train` hands the same :func:`~gravityml.paradigms.deep._loop.fit_torch` loop to Ray
Train's ``TorchTrainer``: N workers (placed by Ray on any of the cluster's nodes), each with
``compute.devices`` devices, gloo on CPU and NCCL on GPU; Ray Train sets up the process group and
each worker runs the loop with a :class:`RayRank` on its shard of the rows. Rank 0 writes the
loop's own checkpoint file and reports it with ``ray.train.report`` at the end of each epoch in
which it wrote one; the other ranks report only their metrics (every rank reports once an epoch,
as Ray Train requires). Ray Train persists the checkpoints under ``<checkpoint_dir>/ray-train``
(on a site, a folder of the site's workspace: every node of a multi-node cluster must see it).

A budget cap reaches the workers through a file in that folder: while ``trainer.fit()`` runs, the
driver polls its ``should_stop`` (the job's meter) and writes the reason there; every rank's loop
reads it after each epoch, the ranks agree, checkpoint and stop, and the job ends stopped for budget.

``compute.max_failures`` becomes ``FailureConfig(max_failures)``: when a worker dies, Ray Train
restarts the group and every worker resumes from the last reported checkpoint, with the loop's
resume path (weights, optimiser, schedule, RNG states), so a run with a failure ends where an
uninterrupted one would. The trained weights and the per-epoch history come back in the last
checkpoint; the driver logs the history to the run's sink.

This module is imported only when a spec asks for workers; the default path never imports Ray.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gravityml._typing import NullSink
from gravityml.compute import Placement
from gravityml.errors import GravityMLError, TrainingError
from gravityml.paradigms._base import TrainContext
from gravityml.paradigms.deep._ddp import Rank

#: The folder under the job's checkpoint folder where Ray Train keeps its checkpoints.
STORAGE = "ray-train"


@dataclass
class RayRank(Rank):
    """A Ray Train worker's place in the run: Ray Train made the process group and picked the device."""

    def device(self, placement: Placement) -> torch.device:
        import ray.train.torch

        device = ray.train.torch.get_device()
        return device if placement.kind == "cuda" else torch.device(placement.torch_device)


def _never() -> str | None:
    return None


#: In the run's Ray Train folder (which every node sees): the reason the driver asks the workers to
#: stop (a budget cap), written by the driver while ``trainer.fit()`` runs, read by every rank.
STOP_FILE = "stop-requested"


def _stop_requested(path: Path) -> Callable[[], str | None]:
    def should_stop() -> str | None:
        try:
            return path.read_text(encoding="utf-8").strip() or "stop requested"
        except OSError:
            return None

    return should_stop


@contextmanager
def _relay_stop(should_stop: Callable[[], str | None], path: Path, every_s: float = 1.0) -> Iterator[None]:
    """While the block runs, poll the driver's ``should_stop`` and write its reason to ``path``."""
    done = threading.Event()

    def poll() -> None:
        while not done.wait(every_s):
            reason = should_stop()
            if reason:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(reason, encoding="utf-8")
                os.replace(tmp, path)
                return

    path.unlink(missing_ok=True)
    thread = threading.Thread(target=poll, name="gravityml-ray-train-stop", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(5)


def _worker_loop(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs: the platform's loop on its shard, reporting every epoch."""
    import ray.train
    from ray.train import Checkpoint

    from gravityml.paradigms.deep._loop import CHECKPOINT, fit_torch

    context = ray.train.get_context()
    me = RayRank(rank=context.get_world_rank(), world=context.get_world_size(), backend=config["backend"])
    # The folder's name says which process holds which rank (for an operator, and the failure test).
    local = Path(tempfile.mkdtemp(prefix=f"gravityml-raytrain-rank{me.rank}-pid{os.getpid()}-"))
    try:
        restored = ray.train.get_checkpoint()
        if restored is not None:  # a restart after a failure: every rank resumes from the same epoch
            with restored.as_directory() as folder:
                shutil.copy2(Path(folder) / CHECKPOINT, local / CHECKPOINT)
        ctx: TrainContext = replace(config["ctx"], checkpoint_dir=local, resume=restored is not None,
                                    sink=NullSink(), should_stop=_stop_requested(Path(config["stop_file"])))
        network = torch.load(io.BytesIO(config["network"]), weights_only=False)
        arrays = config["arrays"]

        def report(epoch: int, metrics: dict[str, float], saved: Path | None) -> None:
            checkpoint = Checkpoint.from_directory(str(saved.parent)) if saved is not None and me.lead else None
            ray.train.report({"epoch": epoch, **metrics}, checkpoint=checkpoint)

        fit_torch(ctx, network, arrays["X"], arrays["y"], X_val=arrays["X_val"], y_val=arrays["y_val"],
                  rank=me, on_epoch=report, **config["options"])
    finally:
        shutil.rmtree(local, ignore_errors=True)


def fit_ray_train(
    ctx: TrainContext,
    network: nn.Module,
    arrays: dict[str, np.ndarray | None],
    options: dict[str, Any],
) -> Any:
    """Train with Ray Train's TorchTrainer on the cluster this job runs on; rank 0's FitResult."""
    from gravityml.paradigms.deep._loop import CHECKPOINT, FitResult

    compute = ctx.spec.compute
    workers = compute.workers
    try:
        import ray
        import ray.train
        from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError as err:  # pragma: no cover - ray is a base dependency
        raise TrainingError("compute.workers needs Ray Train", allowed="ray[train] installed", got=str(err),
                            fix="pip install 'ray[train]'") from err
    if not (ray.is_initialized() or os.environ.get("RAY_ADDRESS")):
        raise TrainingError(
            f"compute.workers: {workers} trains on a Ray site's cluster, and this job runs on no cluster",
            allowed="a job placed on a site whose executor is a Ray cluster",
            got=f"workers: {workers} on this machine",
            fix="pin the job to a Ray site (placement.site), or set compute.workers: 1 (compute.devices: N "
                "trains data-parallel on this machine)",
        )
    if ctx.checkpoint_dir is None:
        raise TrainingError("compute.workers needs a checkpoint folder", allowed="a job run by gravityml train", got=None,
                            fix="run the job through gravityml train (it gives every run one)")
    accelerator = compute.accelerator
    use_gpu = accelerator in ("cuda", "gpu")
    if accelerator not in ("auto", "cpu", "cuda", "gpu"):
        raise TrainingError(f"compute.workers: {workers} runs on CPU or CUDA workers", allowed=["cpu", "cuda", "auto"],
                            got=accelerator, fix="set compute.accelerator: cpu or cuda")
    backend = "nccl" if use_gpu else "gloo"
    storage = Path(ctx.checkpoint_dir) / STORAGE
    if not ctx.resume:  # Ray Train resumes a run it finds under the same name: a fresh run starts clean
        shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(network.cpu(), buffer)
    per_worker: dict[str, float] = {"CPU": float(compute.threads or 1)}
    if use_gpu:
        per_worker["GPU"] = float(compute.devices)
    config = {
        "ctx": replace(ctx, sink=NullSink(), should_stop=_never, dataset=None),
        "network": buffer.getvalue(),
        "arrays": arrays,
        "options": {k: v for k, v in options.items() if k != "extra_metrics"},
        "backend": backend,
        "stop_file": str(storage / STOP_FILE),
    }
    if not ray.is_initialized():
        import logging

        ray.init(logging_level=logging.ERROR, log_to_driver=True)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config=config,
        torch_config=TorchConfig(backend=backend),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=per_worker),
        run_config=RunConfig(
            name="run", storage_path=str(storage),
            failure_config=FailureConfig(max_failures=compute.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    try:
        with _relay_stop(ctx.should_stop, storage / STOP_FILE):  # a budget cap stops every rank at an epoch
            outcome = trainer.fit()
    except GravityMLError:
        raise
    except Exception as err:  # TrainingFailedError: the workers' failures, past max_failures
        last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise TrainingError(
            f"Ray Train over {workers} workers failed: {last}",
            allowed=f"at most {compute.max_failures} worker failures (compute.max_failures)",
            got=f"workers: {workers}, max_failures: {compute.max_failures}, backend: {backend}",
            fix="read the worker tracebacks in the job's log (gravityml jobs logs ID), raise compute.max_failures, "
                "or set compute.workers: 1",
        ) from err
    if outcome.checkpoint is None:
        raise TrainingError("Ray Train finished without a checkpoint", allowed="a checkpoint reported by rank 0",
                            got=str(storage),
                            fix="set train.epochs >= 1 and keep checkpointing on")
    with outcome.checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / CHECKPOINT, map_location="cpu", weights_only=False)
    network.load_state_dict(state["best_state"] if state["best_state"] is not None else state["network"])
    history: list[dict[str, float]] = state["history"]
    for row in history:
        ctx.sink.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
    rates = [row["time/samples_per_s"] for row in history if "time/samples_per_s" in row]
    return FitResult(
        network=network.eval(),
        history=history,
        epochs_run=len(history),
        best_epoch=state["best_epoch"],
        stopped=state["stopped_by"] or "completed all epochs",
        precision=options["precision"],
        devices=workers * compute.devices,
        samples_per_s=float(np.mean(rates)) if rates else 0.0,
        resumed_from=state.get("resumed_from"),
    )


__all__ = ["RayRank", "fit_ray_train"]
