"""Data-parallel training for ``compute.devices: N`` (N > 1) with DistributedDataParallel.

:func:`fit_distributed` starts N processes (``spawn``: safe next to the threads MLflow and a
server may have running) that each run :func:`~gravityml.paradigms.deep._loop.fit_torch` on
their shard of the rows. CUDA gets one process per GPU and NCCL; ``accelerator: cpu`` gets N
processes with gloo that share the cores, which is how the code path is tested on a machine
without GPUs.

Rendezvous goes through a ``FileStore`` in a private temporary folder rather than a TCPStore:
torch's TCPStore server listens on every interface whatever host it is given (measured with
``ss -ltn`` on torch 2.13: ``*:PORT``), and training must open nothing beyond loopback. The
collectives themselves are pinned to ``lo`` (``GLOO_SOCKET_IFNAME``/``NCCL_SOCKET_IFNAME``).

Rank 0 alone writes checkpoints, reports metrics (through a queue the parent drains into
``ctx.sink``) and hands the trained weights back; the parent returns them in its own network.
"""

from __future__ import annotations

import io
import os
import pickle
import queue as queue_module
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gravityml._typing import NullSink
from gravityml.compute import Placement
from gravityml.errors import GravityMLError, TrainingError
from gravityml.paradigms._base import TrainContext

#: What rank 0 broadcasts when the process that started the run is gone.
ORPHANED = "\x00orphaned"

#: How long a collective may wait for a peer before the run fails instead of hanging.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass
class Rank:
    """This process's place in a data-parallel run (passed to ``fit_torch`` in each worker)."""

    rank: int
    world: int
    backend: str
    parent: int = 0

    @property
    def lead(self) -> bool:
        return self.rank == 0

    def device(self, placement: Placement) -> torch.device:
        return torch.device(f"cuda:{self.rank}") if placement.kind == "cuda" else torch.device(placement.torch_device)

    def threads(self, given: int | None) -> int:
        """CPU threads per process: the spec's count, else this process's share of the cores."""
        if given:
            return given
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS, Windows
            cores = os.cpu_count() or 1
        return max(1, cores // self.world)

    def wrap(self, network: nn.Module, device: torch.device) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        # DDP broadcasts rank 0's parameters here, so every rank starts from the same weights.
        return DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)

    def shard(self, n: int, seed: int, epoch: int) -> torch.Tensor:
        """This rank's rows for ``epoch``: a seeded shuffle, split N ways (padded to equal shards)."""
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=self.world, rank=self.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return torch.tensor(list(sampler), dtype=torch.long)

    def reseed(self, seed: int, epoch: int) -> None:
        """Per-rank, per-epoch RNG (dropout): repeatable, and a resumed epoch draws the same numbers."""
        torch.manual_seed(seed + 7919 * (epoch + 1) + 104729 * self.rank)

    def sum(self, *values: float, device: torch.device) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def agree(self, stop: str | None) -> str | None:
        """Rank 0's decision to stop, so that no rank waits in a collective the others left."""
        orphaned = self.lead and self.parent and os.getppid() != self.parent
        box: list[Any] = [ORPHANED if orphaned else stop]
        dist.broadcast_object_list(box, src=0)
        if box[0] == ORPHANED:
            # The parent was killed: leave now, without a checkpoint that says "stopped", so that
            # ``--resume`` continues from the last epoch as after any crash.
            os._exit(3)
        return box[0]


class _QueueSink:
    """Rank 0's metric sink: forwards to the parent, which owns the real ``ctx.sink``."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.channel.put(("metrics", dict(metrics), step))

    def log_params(self, params: dict[str, Any]) -> None:
        self.channel.put(("params", dict(params), None))


class _StopFlag:
    """``should_stop`` in a worker: the parent sets the event when its own ``ctx.should_stop`` fires."""

    def __init__(self, event: Any) -> None:
        self.event = event

    def __call__(self) -> str | None:
        return "stop requested by the parent" if self.event.is_set() else None


def _worker(rank: int, world: int, backend: str, store_dir: str, channel: Any, stop: Any, out: str, job: dict[str, Any]) -> None:
    from gravityml.paradigms.deep._loop import fit_torch

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    me = Rank(rank=rank, world=world, backend=backend, parent=os.getppid())
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
        store = dist.FileStore(os.path.join(store_dir, "rendezvous"), world)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT)
        ctx: TrainContext = job["ctx"]
        ctx = replace(ctx, sink=_QueueSink(channel) if me.lead else NullSink(), should_stop=_StopFlag(stop))
        arrays = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in job["arrays"].items()}
        network = torch.load(io.BytesIO(job["network"]), weights_only=False)
        fit = fit_torch(ctx, network, arrays["X"], arrays["y"], X_val=arrays["X_val"], y_val=arrays["y_val"], rank=me, **job["options"])
        if me.lead:
            state = {k: v.detach().cpu() for k, v in fit.network.state_dict().items()}
            fit.network = nn.Identity()  # the weights travel in ``state``; no need to pickle the module twice
            tmp = f"{out}.tmp"
            torch.save({"state": state, "fit": fit}, tmp)
            os.replace(tmp, out)
        dist.barrier()
    except BaseException as err:  # every failure goes back to the parent, typed when it can be
        try:
            pickle.dumps(err)
            channel.put(("error", err, traceback.format_exc()))
        except (pickle.PicklingError, TypeError, AttributeError):  # what pickle raises for an odd error
            channel.put(("error", None, traceback.format_exc()))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    # Leave without the interpreter's shutdown: gloo's threads can still be joinable when their C++
    # destructors run at exit, which aborts the process ("terminate called without an active
    # exception", exit -6) after a successful run. Flush what the parent reads, then exit at once.
    channel.close()
    channel.join_thread()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def fit_distributed(
    ctx: TrainContext,
    network: nn.Module,
    placement: Placement,
    arrays: dict[str, np.ndarray | None],
    options: dict[str, Any],
) -> Any:
    """Run ``fit_torch`` in ``placement.count`` processes and return rank 0's FitResult."""
    world = placement.count
    backend = "nccl" if placement.kind == "cuda" else "gloo"
    if placement.kind not in ("cpu", "cuda"):
        raise TrainingError(
            f"compute.devices: {world} data-parallel processes are not supported on {placement.kind}",
            allowed=["cpu", "cuda"],
            got=placement.kind,
            fix="set compute.devices: 1, or use accelerator: cuda or cpu",
        )
    extra = options.get("extra_metrics")
    if extra is not None:
        try:
            pickle.dumps(extra)
        except Exception as err:
            raise TrainingError(
                "extra_metrics must be picklable to run in data-parallel worker processes",
                got=repr(extra),
                fix="pass a module-level function, or set compute.devices: 1",
            ) from err
    job = {
        "ctx": replace(ctx, sink=NullSink(), should_stop=_never, dataset=None),
        # Bytes, not the module: a module passed to spawn would put its parameters in shared memory,
        # and N optimisers stepping one shared copy race (Hogwild) and break determinism.
        "network": _to_bytes(network.cpu()),
        # Tensors passed to a spawned process travel through shared memory, not a pickle copy.
        "arrays": {k: (torch.from_numpy(np.ascontiguousarray(v)).share_memory_() if v is not None else None) for k, v in arrays.items()},
        "options": options,
    }
    spawn = mp.get_context("spawn")
    channel, stop = spawn.Queue(), spawn.Event()
    scratch = tempfile.mkdtemp(prefix="gravityml-ddp-")
    out = os.path.join(scratch, "result.pt")
    procs = [
        spawn.Process(target=_worker, args=(r, world, backend, scratch, channel, stop, out, job), daemon=True)
        for r in range(world)
    ]
    failure: tuple[Any, str] | None = None
    try:
        for p in procs:
            p.start()
        while True:
            if not stop.is_set() and ctx.should_stop():
                stop.set()
            try:
                kind, payload, extra_info = channel.get(timeout=0.2)
            except queue_module.Empty:
                codes = [p.exitcode for p in procs]
                if all(c is not None for c in codes):
                    break
                if any(c not in (None, 0) for c in codes) and failure is None:
                    failure = (None, f"a worker process exited with code {next(c for c in codes if c)}")
                if failure is not None:
                    break
                continue
            if kind == "metrics":
                ctx.sink.log_metrics(payload, step=extra_info)
            elif kind == "params":
                ctx.sink.log_params(payload)
            elif kind == "error" and failure is None:
                failure = (payload, extra_info)
        while True:  # metrics rank 0 sent just before it exited
            try:
                kind, payload, extra_info = channel.get_nowait()
            except queue_module.Empty:
                break
            if kind == "metrics" and failure is None:
                ctx.sink.log_metrics(payload, step=extra_info)
            elif kind == "error" and failure is None:
                failure = (payload, extra_info)
        for p in procs:
            p.join(timeout=30 if failure is None else 1)
    finally:
        for p in procs:  # a peer left waiting in a collective would wait for COLLECTIVE_TIMEOUT
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    try:
        if failure is not None or not os.path.exists(out):
            err, text = failure or (None, "rank 0 wrote no result")
            if isinstance(err, GravityMLError):
                raise err
            raise TrainingError(
                f"data-parallel training over {world} {placement.kind} processes failed: {text.strip().splitlines()[-1]}",
                got=f"devices: {world}, backend: {backend}",
                fix="read the worker traceback above, or set compute.devices: 1 to train in one process",
            )
        saved = torch.load(out, weights_only=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fit = saved["fit"]
    network.load_state_dict(saved["state"])
    fit.network = network
    return fit


def _to_bytes(network: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(network, buffer)
    return buffer.getvalue()


def _never() -> str | None:
    return None


__all__ = ["Rank", "fit_distributed"]
