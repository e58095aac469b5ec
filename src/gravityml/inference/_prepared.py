"""Tensor requests checked against the model's schema on their numpy arrays.

``GravityModel.prepare`` (``Schema.validate``) checks a frame column by column in pandas: for one
row of 30 numbers that costs more than the model call. A tensor request was decoded into typed
numpy columns already (``decode_request``); what is left of the schema check is done here on
those arrays, and the batcher runs the rows as they are (``Batcher.submit(prepared=True)``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gravityml.inference._tensors import Decoded
from gravityml.models import GravityModel


def prepared_frame(decoded: Decoded, model: GravityModel) -> pd.DataFrame | None:
    """A tensor request's rows as the model's schema check (``Schema.validate``) would return them,
    checked on the decoded numpy arrays instead of column by column in pandas; None where the
    model's own check must run (a model with its own ``prepare``, or a value that check refuses:
    it then names the column and row).

    ``decode_request`` already made numbers float64 and refused NaN where training saw none; left
    are booleans (as 0.0/1.0), categories seen in training, and text (missing as "").
    """
    if type(model).prepare is not GravityModel.prepare:
        return None
    out: dict[str, np.ndarray | pd.Series] = {}
    for col in model.schema.features:
        values = decoded.columns[col.name]
        if col.kind == "numeric":
            if values.dtype != np.float64:
                return None
            out[col.name] = values
        elif col.kind == "boolean":
            if not all(isinstance(v, bool) for v in values):
                return None
            out[col.name] = values.astype(np.float64)
        else:
            present = [v for v in values if v is not None]
            if not all(isinstance(v, str) for v in present):
                return None
            if not col.nullable and (len(present) < len(values) or any(not v.strip() for v in present)):
                return None
            if col.kind == "categorical":
                known = frozenset(col.categories or ())
                if not all(v in known for v in present):
                    return None
                if len(present) < len(values):  # missing as NaN, as validate gives it
                    values = np.asarray([np.nan if v is None else v for v in values], dtype=object)
                out[col.name] = pd.Series(values, dtype=object, copy=False)  # as validate: object, not str
            else:
                out[col.name] = pd.Series(values if len(present) == len(values) else
                                          ["" if v is None else v for v in values], dtype=str)
    return pd.DataFrame(out)
