"""Device resolution and precision policy (layer 1)."""

from gravityml.compute._device import (
    Placement,
    available_accelerators,
    configure_threads,
    cpu_name,
    describe_hardware,
    resolve_device,
)
from gravityml.compute._precision import (
    PRECISIONS,
    PrecisionPolicy,
    cheapest_within,
    cpu_has_fast_bf16,
    peak_memory_mb,
    precision_policy,
    reset_peak_memory,
    supported_precisions,
)

__all__ = [
    "PRECISIONS",
    "Placement",
    "PrecisionPolicy",
    "cheapest_within",
    "cpu_has_fast_bf16",
    "peak_memory_mb",
    "precision_policy",
    "reset_peak_memory",
    "supported_precisions",
    "available_accelerators",
    "configure_threads",
    "cpu_name",
    "describe_hardware",
    "resolve_device",
]
