"""Job spec models and YAML loading (layer 1)."""

from gravityml.spec._catalog import MODEL_TYPES, ModelType, model_types_for
from gravityml.spec._load import load_spec, parse_spec, read_yaml, spec_error_from, spec_json_schema
from gravityml.spec._models import (
    ComputeSpec,
    DataSpec,
    EnvSpec,
    EstimateSpec,
    JobSpec,
    ModelSpec,
    PlacementSpec,
    SplitSpec,
    StrictModel,
    TrainSpec,
    did_you_mean,
)

__all__ = [
    "MODEL_TYPES",
    "ComputeSpec",
    "DataSpec",
    "EnvSpec",
    "EstimateSpec",
    "JobSpec",
    "ModelSpec",
    "ModelType",
    "PlacementSpec",
    "SplitSpec",
    "StrictModel",
    "TrainSpec",
    "did_you_mean",
    "load_spec",
    "model_types_for",
    "parse_spec",
    "read_yaml",
    "spec_error_from",
    "spec_json_schema",
]
