"""Write scikit-learn's 8x8 digits as PNG files for the image examples (nothing is downloaded).

    python examples/make_digit_images.py

* ``examples/data/digit_is_seven/{seven,other}/``: a binary image task, every 7 against a seeded
  sample of three times as many other digits (imbalanced on purpose: see train.class_weight).
* ``examples/data/new_digits/``: 20 images from the *test* split of ``examples/digits_cnn.yaml``
  (never seen in training), named with their true digit, to try ``gravityml predict`` on files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from gravityml.data import load_dataset
from gravityml.data._images import write_image
from gravityml.spec import load_spec

HERE = Path(__file__).resolve().parent
PIXELS = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]


def main() -> None:
    dataset = load_dataset(load_spec(HERE / "digits_cnn.yaml"))
    frame = dataset.frame
    binary = HERE / "data" / "digit_is_seven"
    shutil.rmtree(binary, ignore_errors=True)
    sevens = frame[frame["target"] == 7]
    others = frame[frame["target"] != 7].sample(n=3 * len(sevens), random_state=7)
    for label, rows in (("seven", sevens), ("other", others)):
        for index, row in rows.iterrows():
            write_image(binary / label / f"{index:04d}.png", row[PIXELS].to_numpy().reshape(8, 8), 16.0)
    new = HERE / "data" / "new_digits"
    shutil.rmtree(new, ignore_errors=True)
    test = dataset.split().test.head(20)
    for index, row in test.iterrows():
        write_image(new / f"{index:04d}_digit{int(row['target'])}.png", np.asarray(row[PIXELS]).reshape(8, 8), 16.0)
    print(f"wrote {len(sevens) + len(others)} images under {binary} and {len(test)} under {new}")


if __name__ == "__main__":
    main()
