"""Device resolution: the spec says ``accelerator``; this module says what that means here.

Only ``auto`` chooses. Asking for ``cuda`` on a machine without one is an error that says what was
found, never a silent fall back to the CPU.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from gravityml.errors import ComputeError


@dataclass(frozen=True)
class Placement:
    """Where a model's tensors live: ``kind`` (cpu, cuda, mps), how many devices, their names.

    ``count`` > 1 means data-parallel training: one process per GPU, or on ``cpu`` that many
    processes sharing the cores.
    """

    kind: str
    count: int
    names: tuple[str, ...]

    @property
    def torch_device(self) -> str:
        return "cuda:0" if self.kind == "cuda" else self.kind


def _torch() -> Any:
    import torch

    return torch


def _no_accelerator_possible() -> bool:
    """True where no GPU can be present, decided without importing torch (about 1.5 s).

    CUDA (and ROCm, which torch also reports as ``cuda``) needs the driver's device nodes in
    ``/dev`` on Linux; MPS exists only on macOS. Elsewhere torch is asked.
    """
    if platform.system() != "Linux" or "torch" in sys.modules:
        return False
    dev = Path("/dev")
    return not any(dev.glob("nvidia*")) and not (dev / "kfd").exists() and not (dev / "dxg").exists()


def available_accelerators() -> dict[str, int]:
    """Accelerator kind -> number of devices on this machine (``cpu`` is always 1)."""
    found = {"cpu": 1}
    if _no_accelerator_possible():
        return found
    try:
        torch = _torch()
    except ImportError:  # a serving install of scikit-learn models carries no torch
        return found
    if torch.cuda.is_available():
        found["cuda"] = torch.cuda.device_count()
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found["mps"] = 1
    return found


def resolve_device(accelerator: str = "auto", devices: int = 1) -> Placement:
    """The concrete placement for a spec's ``compute.accelerator`` and ``compute.devices``."""
    # accelerator: cpu needs no probe of the GPUs (and no torch import: a scikit-learn job never loads it).
    found = {"cpu": 1} if accelerator == "cpu" else available_accelerators()
    kind = accelerator
    if accelerator == "auto":
        kind = "cuda" if "cuda" in found else "mps" if "mps" in found else "cpu"
    if kind not in found:
        raise ComputeError(
            f"compute.accelerator: {kind!r} is not available on this machine",
            allowed=["auto", *sorted(found)],
            got=kind,
            fix="use accelerator: auto (or cpu), or run on a machine that has it",
        )
    if kind == "cpu" and devices > (os.cpu_count() or 1):
        # devices: N on a CPU runs N data-parallel processes (gloo); more processes than cores
        # only queue for the same cores.
        raise ComputeError(
            f"compute.devices: {devices} CPU processes asked for, {os.cpu_count() or 1} cores found",
            allowed=f"1..{os.cpu_count() or 1}",
            got=devices,
            fix=f"set compute.devices to at most {os.cpu_count() or 1} with accelerator: cpu",
        )
    if kind != "cpu" and devices > found[kind]:
        raise ComputeError(
            f"compute.devices: {devices} {kind} devices asked for, {found[kind]} found",
            allowed=f"1..{found[kind]}",
            got=devices,
            fix=f"set compute.devices to at most {found[kind]}",
        )
    if kind == "cuda":
        torch = _torch()
        names = tuple(torch.cuda.get_device_name(i) for i in range(devices))
    elif kind == "mps":
        names = ("Apple MPS",)
    else:
        names = (cpu_name(),)
    return Placement(kind=kind, count=devices, names=names)


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_hardware() -> dict[str, Any]:
    """What this machine offers, for a run's lineage."""
    found = available_accelerators()
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count() or 1,
        "machine": platform.machine(),
        "accelerators": found,
    }
    if "cuda" in found:
        torch = _torch()
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(found["cuda"])]
    return info


def configure_threads(placement: Placement, threads: int | None = None) -> int:
    """Set torch's intra-op threads for CPU work; returns the count used.

    Default: every core this process may use (``sched_getaffinity`` honours cgroup/taskset
    limits, which ``os.cpu_count`` does not), so a container with 2 cores runs 2 threads.
    """
    torch = _torch()
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS, Windows
            threads = os.cpu_count() or 1
    if placement.kind == "cpu" or threads:
        torch.set_num_threads(max(1, int(threads)))
    return int(torch.get_num_threads())
