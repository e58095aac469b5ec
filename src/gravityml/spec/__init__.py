"""Job spec models and YAML loading (layer 1)."""

from gravityml.spec._catalog import MODEL_TYPES, ModelType, model_types_for, model_types_where
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
from gravityml.spec._params import Param, check_model_params, load_entry_point, param_schema

__all__ = [
    "MODEL_TYPES",
    "ComputeSpec",
    "DataSpec",
    "EnvSpec",
    "EstimateSpec",
    "JobSpec",
    "ModelSpec",
    "ModelType",
    "Param",
    "PlacementSpec",
    "SplitSpec",
    "StrictModel",
    "TrainSpec",
    "check_model_params",
    "did_you_mean",
    "load_entry_point",
    "load_spec",
    "model_types_for",
    "model_types_where",
    "param_schema",
    "parse_spec",
    "read_yaml",
    "spec_error_from",
    "spec_json_schema",
]
