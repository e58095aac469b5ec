"""Split breast_cancer by a feature: the clinic's first patients had smoother cells (low mean texture).

Writes, beside this file: first_patients.csv (training), recent.csv (the next patients, unlabelled),
all_patients.csv (first + recent, labelled later: the retraining data) and holdout.csv (later
patients, labelled: what the gate scores both versions on).
"""
from pathlib import Path

import pandas as pd
from gravityml.data import load_sklearn

HERE = Path(__file__).resolve().parent
df = load_sklearn("breast_cancer").frame
cut = df["mean texture"].quantile(0.6)
old, new = df[df["mean texture"] <= cut], df[df["mean texture"] > cut].sample(frac=1.0, random_state=0)
old.to_csv(HERE / "first_patients.csv", index=False)
half = len(new) // 2
new.iloc[:half].drop(columns="target").to_csv(HERE / "recent.csv", index=False)            # what the model saw lately
pd.concat([old, new.iloc[:half]]).to_csv(HERE / "all_patients.csv", index=False)          # appended, now labelled
new.iloc[half:].to_csv(HERE / "holdout.csv", index=False)                                 # labelled later, for the gate
print(f"{len(old)} first patients (mean texture <= {cut:.2f}), {half} recent, {len(new) - half} holdout")
