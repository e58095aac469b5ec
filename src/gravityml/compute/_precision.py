"""Precision policy: which numeric precisions a placement offers and how each one is run.

``fp64`` is true double precision (parameters and inputs in float64). ``bf16`` and ``fp16`` are
mixed precision through :func:`torch.autocast` (parameters stay float32, matrix products run in the
low precision); ``fp16`` also needs a gradient scaler because its narrow exponent range lets small
gradients underflow (Micikevicius et al. 2018, "Mixed Precision Training", arXiv:1710.03740).
``bf16`` has float32's exponent range, so it needs no scaler.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gravityml.compute._device import Placement
from gravityml.errors import ComputeError

#: Cheapest last: the order `precision: auto` walks when it looks for the cheapest good choice.
PRECISIONS: tuple[str, ...] = ("fp64", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class PrecisionPolicy:
    """How to run one precision: the parameter dtype, the autocast dtype (or none), a scaler."""

    name: str
    device_type: str
    param_dtype: str
    autocast_dtype: str | None
    needs_scaler: bool

    def torch_param_dtype(self) -> Any:
        import torch

        return getattr(torch, self.param_dtype)

    def autocast(self) -> Any:
        """A context manager: torch.autocast for mixed precision, a no-op otherwise."""
        import contextlib

        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=getattr(torch, self.autocast_dtype))

    def grad_scaler(self) -> Any:
        """A GradScaler (enabled only for fp16)."""
        import torch

        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)


@lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 dot products (AVX-512 BF16 or AMX)."""
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


def supported_precisions(placement: Placement) -> list[str]:
    """The precisions this placement can train and predict at, highest first.

    CPU: fp64, fp32 and bf16 always (bf16 is emulated and slow without AVX-512 BF16 / AMX, but
    correct); fp16 only with AVX-512 FP16 or AMX-FP16, since plain CPUs emulate it at a fraction
    of fp32's speed. CUDA: fp16 everywhere, bf16 from compute capability 8.0 (Ampere). MPS: no fp64.
    """
    if placement.kind == "cpu":
        found = ["fp64", "fp32", "bf16"]
        if {"avx512_fp16", "amx_fp16"} & _cpu_flags():
            found.insert(2, "fp16")
        return found
    if placement.kind == "cuda":
        import torch

        found = ["fp64", "fp32", "fp16"]
        if torch.cuda.is_bf16_supported():
            found.append("bf16")
        return found
    return ["fp32", "fp16", "bf16"]


def precision_policy(name: str, placement: Placement) -> PrecisionPolicy:
    """The policy for ``name`` on ``placement``, or a ComputeError naming what is offered."""
    offered = supported_precisions(placement)
    if name not in offered:
        raise ComputeError(
            f"compute.precision: {name!r} is not offered by {placement.kind} ({', '.join(placement.names)})",
            allowed=offered,
            got=name,
            fix="choose an offered precision, or precision: auto to measure and choose",
        )
    device_type = "cuda" if placement.kind == "cuda" else placement.kind
    if name == "fp64":
        return PrecisionPolicy(name, device_type, "float64", None, False)
    if name == "fp32":
        return PrecisionPolicy(name, device_type, "float32", None, False)
    if name == "bf16":
        return PrecisionPolicy(name, device_type, "float32", "bfloat16", False)
    return PrecisionPolicy(name, device_type, "float32", "float16", True)


def cheapest_within(results: dict[str, dict[str, float]], *, metric: str, higher_is_better: bool, tolerance: float) -> tuple[str, str]:
    """The fastest precision whose ``metric`` is within ``tolerance`` of the highest precision's.

    ``results`` maps precision -> {metric, "samples_per_s"}; ``tolerance`` is in the metric's
    units (0.005 = half a percentage point of accuracy). Returns (choice, reason).
    """
    reference_name = next(p for p in PRECISIONS if p in results)
    reference = results[reference_name][metric]
    good = []
    for name, row in results.items():
        gap = (reference - row[metric]) if higher_is_better else (row[metric] - reference)
        if gap <= tolerance:
            good.append(name)
    choice = max(good, key=lambda n: results[n]["samples_per_s"])
    speedup = results[choice]["samples_per_s"] / max(results["fp32"]["samples_per_s"], 1e-12) if "fp32" in results else 1.0
    reason = (
        f"{choice}: fastest precision within {tolerance:g} of {reference_name} on {metric} "
        f"({results[choice][metric]:.4f} vs {reference:.4f}; {speedup:.2f}x fp32 samples/s)"
    )
    return choice, reason


def reset_peak_memory(placement: Placement) -> None:
    """Start a fresh peak-memory window (CUDA: allocator stats; Linux CPU: the process's VmHWM)."""
    if placement.kind == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
        return
    try:  # writing 5 to clear_refs resets the peak resident set size (Linux >= 4.0, proc(5))
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_memory_mb(placement: Placement) -> float | None:
    """Peak memory since :func:`reset_peak_memory`: device memory on CUDA, process RSS on CPU."""
    if placement.kind == "cuda":
        import torch

        return float(torch.cuda.max_memory_allocated()) / 2**20
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return None
