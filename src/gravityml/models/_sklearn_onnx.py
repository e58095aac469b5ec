"""ONNX export of a scikit-learn model: the whole Pipeline (preprocessing + estimator) as one graph.

The graph takes one input per training column, each of shape ``[n, 1]``: ``float32`` for numeric and
boolean columns (``NaN`` where a value is missing) and ``string`` for categorical and text columns
(``""`` where a value is missing). The metadata written beside it says which input is which column,
so a program holding only onnxruntime can feed it rows.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from gravityml.errors import ModelError
from gravityml.schema import Schema

#: ONNX operator sets the graph uses: the default domain and the ai.onnx.ml domain (trees, imputers).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
#: What the TF-IDF step tokenises on: scikit-learn's default ``token_pattern`` as an ONNX regex.
TOKEN_REGEX = r"\b\w\w+\b"


def _patch_tree_converter() -> None:
    """Make skl2onnx's tree converter write ints where ONNX wants ints.

    skl2onnx 1.20 passes Python ``False`` into the integer list ``nodes_missing_value_tracks_true``
    for leaves of HistGradientBoosting trees, which recent ``onnx`` rejects ("Expected an int, got a
    boolean"). Casting the one argument keeps the converter's logic untouched.
    """
    from skl2onnx.common import tree_ensemble

    if getattr(tree_ensemble.add_node, "_gravityml_int_cast", False):
        return
    original = tree_ensemble.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        return original(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)

    add_node._gravityml_int_cast = True  # type: ignore[attr-defined]
    tree_ensemble.add_node = add_node


def _register_boosting_converters(estimator: Any) -> None:
    """Teach skl2onnx the XGBoost and LightGBM estimators, through onnxmltools' converters.

    The recipe of skl2onnx's own tutorial (https://onnx.ai/sklearn-onnx/auto_tutorial/plot_gexternal_xgboost.html
    and plot_gexternal_lightgbm.html): a shape calculator from skl2onnx, the converter from onnxmltools.
    Only the library the estimator comes from is imported.
    """
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    module = type(estimator).__module__.split(".")[0]
    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    if module == "xgboost":
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(
            XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes, convert_xgboost, options=options
        )
        update_registered_converter(XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost)
    elif module == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(
            LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes, convert_lightgbm,
            options=options,
        )
        update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes, convert_lightgbm)


def _is_string_column(kind: str) -> bool:
    return kind in ("categorical", "text")


def export_pipeline(pipeline: Any, *, kind: str, schema: Schema, path: Path) -> dict[str, Any]:
    """Convert ``pipeline`` to ONNX at ``path``; return the input/output description."""
    if kind not in ("classifier", "regressor"):
        raise ModelError(
            f"a scikit-learn {kind} cannot be exported to ONNX yet",
            allowed=["classifier", "regressor"],
            got=kind,
            fix="serve it with its native runtime (gravityml serve REF)",
        )
    onx, inputs = convert_pipeline(pipeline, schema=schema, options={"zipmap": False} if kind == "classifier" else None)
    path.write_bytes(onx.SerializeToString())
    graph_outputs = [o.name for o in onx.graph.output]
    outputs = (
        {"label": graph_outputs[0], "probabilities": graph_outputs[1]}
        if kind == "classifier"
        else {"prediction": graph_outputs[0]}
    )
    return {
        "inputs": inputs,
        "outputs": outputs,
        "preprocessing": {"in_graph": True, "steps": describe(pipeline)},
        "opset": TARGET_OPSET,
    }


def convert_pipeline(
    pipeline: Any, *, schema: Schema, options: dict[str, Any] | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    """``pipeline`` (a ``preprocess`` step, then optionally an estimator) as an ONNX ModelProto,
    and the metadata ``inputs`` that say which graph input takes which column.

    ``options`` are skl2onnx options for the last step.
    """
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    except ImportError as exc:  # pragma: no cover - skl2onnx is a dependency
        raise ModelError("ONNX export needs skl2onnx", got=str(exc), fix="pip install skl2onnx") from None
    _patch_tree_converter()
    # The graph sees missing categories as "" (string tensors hold no NaN); the fitted imputer looked
    # for NaN. Only the copy that is converted changes.
    graph_pipeline = copy.deepcopy(pipeline)
    all_options: dict[int, dict[str, Any]] = {}
    preprocess = graph_pipeline.named_steps.get("preprocess")
    for name, transformer, _columns in getattr(preprocess, "transformers_", []):
        if name == "categorical":
            transformer.steps[0][1].missing_values = ""
        elif name.startswith("text_"):
            # ONNX's StringNormalizer defaults to the en_US locale, missing on minimal systems.
            all_options[id(transformer)] = {"locale": "C", "tokenexp": TOKEN_REGEX}
    estimator = graph_pipeline.steps[-1][1]
    if type(estimator).__module__.split(".")[0] in ("xgboost", "lightgbm"):
        try:
            _register_boosting_converters(estimator)
        except ImportError as exc:
            raise ModelError(
                f"exporting a {type(estimator).__name__} to ONNX needs onnxmltools",
                got=str(exc),
                fix="pip install 'gravityml[boosting]'",
            ) from None
    if options:
        all_options[id(estimator)] = options
    initial_types = [
        (c.name, StringTensorType([None, 1]) if _is_string_column(c.kind) else FloatTensorType([None, 1]))
        for c in schema.features
    ]
    try:
        onx = convert_sklearn(graph_pipeline, initial_types=initial_types, target_opset=TARGET_OPSET, options=all_options)
    except Exception as exc:  # skl2onnx raises many types; each means "this estimator does not convert"
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelError(
            f"scikit-learn model {type(estimator).__name__} could not be converted to ONNX: {first}",
            got=type(exc).__name__,
            fix="serve it with its native runtime (gravityml serve REF), or train a model type skl2onnx supports",
        ) from None
    graph_inputs = [i.name for i in onx.graph.input]
    inputs = [
        {
            "name": graph_name,
            "columns": [c.name],
            "datatype": "STRING" if _is_string_column(c.kind) else "FP32",
            "shape": [-1, 1],
            "missing": "" if _is_string_column(c.kind) else "NaN",
        }
        for graph_name, c in zip(graph_inputs, schema.features)
    ]
    return onx, inputs


def describe(pipeline: Any) -> list[dict[str, Any]]:
    """Each preprocessing part (columns -> transformers) and the estimator, as the graph runs them."""
    parts: list[dict[str, Any]] = []
    preprocess = pipeline.named_steps.get("preprocess")
    for name, transformer, columns in getattr(preprocess, "transformers_", []):
        if transformer == "drop":
            continue
        steps = [type(s).__name__ for _, s in getattr(transformer, "steps", [(name, transformer)])]
        parts.append({"part": name, "columns": [columns] if isinstance(columns, str) else list(columns), "steps": steps})
    parts.append({"part": "estimator", "steps": [type(pipeline.steps[-1][1]).__name__]})
    return parts

