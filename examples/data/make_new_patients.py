"""Write examples/data/new_patients.csv: the held-out rows of examples/tumor.yaml, without the target.

The job's split is deterministic (data.split.seed), so these rows were never seen in training.
Run: .venv/bin/python examples/data/make_new_patients.py
"""

from pathlib import Path

from gravityml.data import load_dataset
from gravityml.spec import load_spec

here = Path(__file__).resolve().parent
spec = load_spec(here.parent / "tumor.yaml")
held_out = load_dataset(spec).split().test.drop(columns=[spec.data.target])
held_out.round(6).to_csv(here / "new_patients.csv", index=False)
print(f"wrote {len(held_out)} rows to {here / 'new_patients.csv'}")
