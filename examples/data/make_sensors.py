"""Make sensors.csv: a sample of synthetic machine telemetry with a failure label (seeded).

Run: python examples/data/make_sensors.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(20261124)
n = 3000
temperature = rng.normal(70, 8, size=n).round(2)
vibration = rng.gamma(2.0, 0.5, size=n).round(3)
pressure = rng.normal(30, 3, size=n).round(2)
hours_since_service = rng.integers(0, 5000, size=n)
risk = 0.05 * (temperature - 70) + 0.8 * vibration + 0.0004 * hours_since_service
failure = (risk + rng.normal(0, 0.5, size=n)) > 2.2
frame = pd.DataFrame(
    {
        "temperature": temperature,
        "vibration": vibration,
        "pressure": pressure,
        "hours_since_service": hours_since_service,
        "failure": np.where(failure, "yes", "no"),
    }
)
frame.to_csv(Path(__file__).with_name("sensors.csv"), index=False)
print(f"wrote {n} rows, {failure.mean():.1%} failures")
