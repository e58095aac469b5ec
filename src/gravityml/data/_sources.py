"""Datasets that ship inside packages: ``sklearn:NAME`` (nothing is downloaded)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pandas as pd

from gravityml.data._io import Table
from gravityml.errors import DataError
from gravityml.spec import did_you_mean


def _loaders() -> dict[str, Callable[..., Any]]:
    from sklearn import datasets

    return {
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
        "digits": datasets.load_digits,
        "iris": datasets.load_iris,
        "linnerud": datasets.load_linnerud,
        "wine": datasets.load_wine,
    }


SKLEARN_DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "linnerud", "wine")


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over a frame's values, index and column names (for data not read from a file)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def load_sklearn(name: str) -> Table:
    """A scikit-learn bundled dataset as a frame with a ``target`` column.

    Classification targets keep scikit-learn's class names where it has them (iris: setosa, ...);
    digits' pixel columns are ``pixel_0_0`` ... ``pixel_7_7`` so images can be rebuilt from rows.
    """
    loaders = _loaders()
    if name not in loaders:
        raise DataError(
            f"data.source: 'sklearn:{name}' is not a dataset scikit-learn ships{did_you_mean(name, list(loaders))}",
            allowed=[f"sklearn:{n}" for n in sorted(loaders)],
            got=f"sklearn:{name}",
            fix="use one of the allowed names, or a file path",
        )
    bunch = loaders[name](as_frame=True)
    frame = bunch.frame.copy()
    if name == "linnerud":
        frame = pd.concat([bunch.data, bunch.target.iloc[:, [0]].rename(columns={"Weight": "target"})], axis=1)
    names = getattr(bunch, "target_names", None)
    if name in ("breast_cancer", "iris", "wine") and names is not None:
        frame["target"] = pd.Categorical.from_codes(frame["target"], list(map(str, names))).astype(str)
    if name == "digits":
        frame.columns = [
            f"pixel_{c.split('_')[1]}_{c.split('_')[2]}" if c.startswith("pixel_") else c
            for c in frame.columns
        ]
    return Table(
        frame=frame,
        uri=f"sklearn:{name}",
        fingerprint=frame_fingerprint(frame),
        format="sklearn",
        size_bytes=int(frame.memory_usage(deep=True).sum()),
    )
