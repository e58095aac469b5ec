"""Write digits_5_per_class.csv: scikit-learn's 8x8 digits (1,797 rows) where most labels are
blanked, for semi-supervised learning.

Per class, 45 rows keep their label and every other row's ``target`` is empty (unlabelled). The
job (examples/digits_label_spreading.yaml) holds out 40 of the 45 per class as the labelled test
split (``split: {test: 0.8888}``, stratified), so the model learns from 5 labels per class plus
about 1,350 unlabelled rows, and is scored on 400 labelled rows it never saw.

Deterministic (seed 0). ``--labels-per-class`` changes the 45.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def make_digits_few_labels(labelled_per_class: int = 45, seed: int = 0) -> pd.DataFrame:
    from sklearn.datasets import load_digits

    bunch = load_digits(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [f"pixel_{c.split('_')[1]}_{c.split('_')[2]}" if c.startswith("pixel_") else c for c in frame.columns]
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.choice(np.flatnonzero(frame["target"].to_numpy() == c), labelled_per_class, replace=False) for c in range(10)]
    )
    target = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    target.iloc[keep] = frame["target"].iloc[keep].astype("int64")
    frame["target"] = target
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).with_name("digits_5_per_class.csv"))
    parser.add_argument("--labels-per-class", type=int, default=45)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frame = make_digits_few_labels(args.labels_per_class, args.seed)
    frame.to_csv(args.output, index=False)
    print(f"wrote {args.output}: {len(frame)} rows, {int(frame['target'].notna().sum())} labelled")


if __name__ == "__main__":
    main()
