"""How fast each kind of accelerator is, relative to this machine, with the source of each number.

Estimates scale a job's work by peak dense throughput: 16-bit tensor-core TFLOP/s for GPUs (what
mixed-precision training uses; the datasheets' figures "with sparsity" are halved to dense), FP32 for
CPUs, and a measured float32 GEMM for this machine. Peak numbers overstate what training reaches and the ratio between two devices is only a first guess (memory bandwidth, tensor cores and
the input pipeline matter too); the plan prints the basis so a user can replace it with a measured
``placement.estimate``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from gravityml.errors import CatalogError
from gravityml.spec import did_you_mean

THIS_MACHINE = "this-machine"


@dataclass(frozen=True)
class Hardware:
    name: str
    kind: Literal["gpu", "cpu"]
    tflops: float  # dense peak, see the module docstring
    source: str


def _gpu(name: str, tflops: float, source: str) -> tuple[str, Hardware]:
    return name, Hardware(name, "gpu", tflops, source)


HARDWARE: dict[str, Hardware] = dict(
    [
        _gpu("t4", 65.0, "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/t4-tensor-core-datasheet-951643.pdf"),
        _gpu("v100", 125.0, "https://images.nvidia.com/content/technologies/volta/pdf/volta-v100-datasheet-update-us-1165301-r5.pdf"),
        _gpu("a100", 312.0, "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"),
        _gpu("a10g", 125.0, "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a10/pdf/a10-datasheet.pdf"),
        _gpu("l4", 121.0, "https://resources.nvidia.com/en-us-data-center-overview/l4-gpu-datasheet"),
        _gpu("l40s", 362.0, "https://www.nvidia.com/en-us/data-center/l40s/"),
        _gpu("h100", 989.0, "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet"),
        _gpu("h200", 989.0, "https://www.nvidia.com/en-us/data-center/h200/"),
        _gpu("mi300x", 1307.0, "https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html"),
        # One server core: 2 AVX-512 FMA units x 16 fp32 lanes x 2 flops x ~3 GHz = 192 GFLOP/s peak,
        # about half of it sustained in GEMM (Intel 64 and IA-32 Optimization Reference Manual, ch. 18).
        (
            "cpu",
            Hardware("cpu", "cpu", 0.1, "https://www.intel.com/content/www/us/en/content-details/671488/"),
        ),
    ]
)


@lru_cache(maxsize=1)
def this_machine_tflops() -> float:
    """Measured FP32 GEMM throughput of this machine (best of a few 512x512 products, < 1 s)."""
    import numpy as np

    n = 512
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return max(2 * n**3 / best / 1e12, 1e-4)


def hardware(name: str) -> Hardware:
    """The table's row ``name``; ``this-machine`` is measured."""
    if name == THIS_MACHINE:
        return Hardware(THIS_MACHINE, "cpu", this_machine_tflops(), "measured here: numpy float32 GEMM")
    if name not in HARDWARE:
        known = [*sorted(HARDWARE), THIS_MACHINE]
        raise CatalogError(
            "accelerator",
            f"{name!r} is not in the hardware table{did_you_mean(name, known)}",
            allowed=known,
            got=name,
            fix="use a row of the table, or 'cpu' for CPU-only nodes (per_node = cores)",
        )
    return HARDWARE[name]
