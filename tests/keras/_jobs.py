"""The small Keras job the precision tests share: iris, an MLP on TensorFlow, 3 epochs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def iris_keras(folder: Path, name: str = "iris-keras", **compute: Any) -> Path:
    """Write the job as ``folder/NAME.yaml`` (``compute`` merged over accelerator: cpu) and return its path."""
    doc = {
        "name": name,
        "task": "supervised",
        "data": {"source": "sklearn:iris", "target": "target", "split": {"test": 0.25, "seed": 3}},
        "model": {"type": "mlp", "framework": "tensorflow", "params": {"hidden": [16], "dropout": 0.0}},
        "train": {"epochs": 3, "batch_size": 16, "lr": 0.02, "seed": 3},
        "compute": {"accelerator": "cpu", **compute},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path
