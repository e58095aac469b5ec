"""Device resolution and precision policy (layer 1)."""

from gravityml.compute._device import (
    Placement,
    available_accelerators,
    cpu_name,
    describe_hardware,
    resolve_device,
)

__all__ = [
    "Placement",
    "available_accelerators",
    "cpu_name",
    "describe_hardware",
    "resolve_device",
]
