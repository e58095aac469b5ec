"""What the unsupervised / semi-supervised benchmarks share: spread over seeds and the JSON file."""

from __future__ import annotations

import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any


def summary(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation, min and max over seeds."""
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def mean_sd(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.3f} ± {stats['sd']:.3f}"


def write_results(path: Path, benchmark: str, **payload: Any) -> None:
    """``{"benchmark", "machine", **payload}`` as indented JSON at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "python": sys.version.split()[0]}
    path.write_text(json.dumps({"benchmark": benchmark, "machine": machine, **payload}, indent=2))
