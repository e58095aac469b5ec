"""Make fraud.csv: synthetic card transactions with a fraud label (seeded; nothing downloaded).

Run: python examples/data/make_fraud.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(20261123)
n = 4000
amount = rng.lognormal(mean=3.5, sigma=1.0, size=n).round(2)
hour = rng.integers(0, 24, size=n)
foreign = rng.random(n) < 0.1
card_age_days = rng.integers(1, 3000, size=n)
merchant_risk = rng.beta(2, 8, size=n).round(3)
score = 0.004 * amount + 1.5 * foreign + 2.5 * merchant_risk - 0.0008 * card_age_days + 0.6 * (hour < 5)
fraud = (score + rng.normal(0, 0.6, size=n)) > 1.6
frame = pd.DataFrame(
    {
        "amount": amount,
        "hour": hour,
        "foreign": foreign.astype(int),
        "card_age_days": card_age_days,
        "merchant_risk": merchant_risk,
        "fraud": np.where(fraud, "yes", "no"),
    }
)
frame.to_csv(Path(__file__).with_name("fraud.csv"), index=False)
print(f"wrote {n} rows, {fraud.mean():.1%} fraud")
