"""Data loaders, splits and fingerprints (layer 2)."""

from gravityml.data._dataset import Dataset, Split, infer_problem, load_dataset, read_source
from gravityml.data._io import (
    FORMATS,
    WRITABLE_FORMATS,
    Table,
    atomic_write,
    check_writable,
    format_of,
    read_table,
    resolve_path,
    write_table,
)
from gravityml.data._sources import SKLEARN_DATASETS, frame_fingerprint, load_sklearn

__all__ = [
    "FORMATS",
    "SKLEARN_DATASETS",
    "WRITABLE_FORMATS",
    "Dataset",
    "Split",
    "Table",
    "atomic_write",
    "check_writable",
    "format_of",
    "frame_fingerprint",
    "infer_problem",
    "load_dataset",
    "load_sklearn",
    "read_source",
    "read_table",
    "resolve_path",
    "write_table",
]
