"""OIP tensors <-> rows: what is accepted, and the message for each thing that is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gravityml.errors import InferenceError
from gravityml.inference._tensors import decode_request, output_tensors, select_outputs
from gravityml.schema import Schema

SCHEMA = Schema.from_frame(
    pd.DataFrame({
        "age": [30.0, np.nan, 41.0],
        "height": [1.7, 1.8, 1.6],
        "member": [True, False, True],
        "city": ["oslo", "rome", None],
        "note": ["a b", "c", "d"],
    }),
    text_columns=["note"],
)


def tensor(name: str, data: list, datatype: str = "FP64", shape: list[int] | None = None) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def good(n: int = 2) -> list[dict]:
    return [
        tensor("age", [30, None][:n]),
        tensor("height", [1.7, 1.9][:n], "FP32"),
        tensor("member", [True, False][:n], "BOOL"),
        tensor("city", ["rome", None][:n], "BYTES"),
        tensor("note", ["x y", "z"][:n], "BYTES"),
    ]


def test_column_tensors_become_a_frame_the_schema_accepts() -> None:
    decoded = decode_request({"inputs": good(), "id": "r1", "parameters": {"probabilities": True}}, SCHEMA)
    frame = SCHEMA.validate(decoded.frame())
    assert decoded.rows == 2 and decoded.request_id == "r1" and decoded.probabilities
    assert np.isnan(frame["age"][1]) and frame["member"].tolist() == [1.0, 0.0]
    assert frame["city"].tolist()[0] == "rome" and pd.isna(frame["city"].tolist()[1])


def test_nested_data_and_matrix_input() -> None:
    numeric = Schema.from_frame(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}))
    nested = decode_request({"inputs": [{"name": "input", "datatype": "INT64", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]}, numeric)
    assert nested.frame().to_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    mixed = decode_request({"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1, 5],
                                        "data": ["31", "1.5", "true", "oslo", "hello"]}]}, SCHEMA)
    assert SCHEMA.validate(mixed.frame()).iloc[0].tolist() == [31.0, 1.5, 1.0, "oslo", "hello"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t[0].update(datatype="BYTES"), "datatype BYTES does not fit numeric column 'age'"),
        (lambda t: t[0].update(datatype="FP128"), "unknown datatype"),
        (lambda t: t[1].update(data=[1.0, float("nan")]), "row 2 is NaN/null"),
        (lambda t: t[1].update(data=[1.0, float("inf")]), "infinite"),
        (lambda t: t[1].update(data=[1.0, "2"]), "must be numbers"),
        (lambda t: t[2].update(data=[True, 2], datatype="INT64"), "takes true/false"),
        (lambda t: t[4].update(data=["x", None]), "takes strings"),
        (lambda t: t[3].update(shape=[3]), "holds 3 values"),
        (lambda t: t[3].update(shape=[2, 2], data=["a"] * 4), "shape [n] or [n, 1]"),
        (lambda t: t[3].update(shape=[-1]), "non-negative integers"),
        (lambda t: t[4].update(data=["x"], shape=[1]), "has 1 rows but an earlier input has 2"),
        (lambda t: t.pop(), "lacks input 'note'"),
        (lambda t: t.append(tensor("age", [1, 2])), "given twice"),
        (lambda t: t.append(tensor("shoe", [1, 2])), "unknown input tensor 'shoe'"),
        (lambda t: t[0].update(parameters={"binary_data_size": 16}), "does not fit the binary part"),
    ],
)
def test_each_bad_tensor_is_named(change, message: str) -> None:
    tensors = good()
    change(tensors)
    with pytest.raises(InferenceError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_request({"inputs": tensors}, SCHEMA)


def test_binary_extension_round_trip() -> None:
    from gravityml.inference._tensors import binary_outputs, binary_values

    strings = b"".join(len(w).to_bytes(4, "little") + w for w in (b"oslo", b""))
    tensors = good()
    tensors[0] = {"name": "age", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}
    tensors[3] = {"name": "city", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(strings)}}
    binary = np.array([30.5, 40.0], dtype="<f4").tobytes() + strings
    decoded = decode_request({"inputs": tensors}, SCHEMA, binary=binary)
    assert decoded.columns["age"].tolist() == [30.5, 40.0] and decoded.columns["city"].tolist() == ["oslo", ""]
    with pytest.raises(InferenceError, match="not a whole number of FP64"):
        binary_values(b"123", "FP64", "age")
    out, blob = binary_outputs(output_tensors(pd.DataFrame({"prediction": ["a"], "confidence": [0.75]}), None), {"confidence"})
    assert out[1]["parameters"]["binary_data_size"] == 8 and "data" not in out[1] and out[0]["data"] == ["a"]
    assert np.frombuffer(blob, dtype="<f8").tolist() == [0.75]


def test_request_level_errors() -> None:
    with pytest.raises(InferenceError, match="JSON object"):
        decode_request([1], SCHEMA)
    with pytest.raises(InferenceError, match="non-empty 'inputs'"):
        decode_request({"inputs": {}}, SCHEMA)
    with pytest.raises(InferenceError, match="too many rows"):
        decode_request({"inputs": good()}, SCHEMA, max_rows=1)
    with pytest.raises(InferenceError, match="'outputs' must be a list"):
        decode_request({"inputs": good(), "outputs": ["prediction"]}, SCHEMA)


def test_outputs_follow_predict_columns_and_requests() -> None:
    predicted = pd.DataFrame({"prediction": ["a", "b"], "confidence": [0.9, 0.6], "is_anomaly": [True, False],
                              "cluster": np.array([3, 4])})
    proba = pd.DataFrame([[0.9, 0.1], [0.4, 0.6]], columns=["a", "b"])
    tensors = {t["name"]: t for t in output_tensors(predicted, proba)}
    assert [tensors[n]["datatype"] for n in ("prediction", "confidence", "is_anomaly", "cluster")] == ["BYTES", "FP64", "BOOL", "INT64"]
    assert tensors["probabilities"]["shape"] == [2, 2] and tensors["probabilities"]["data"] == [0.9, 0.1, 0.4, 0.6]
    assert [t["name"] for t in select_outputs(list(tensors.values()), ["confidence"])] == ["confidence"]
    with pytest.raises(InferenceError, match="unknown output 'logits'"):
        select_outputs(list(tensors.values()), ["logits"])


NUMERIC = Schema.from_frame(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}))


def matrix(data: list, datatype: str = "FP64", shape: list[int] | None = None) -> dict:
    return {"name": "input", "datatype": datatype, "shape": shape or [len(data) // 2, 2], "data": data}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([matrix([1, 2]), matrix([3, 4])], "input 'input' is given twice"),
        ([tensor("a", [1]), matrix([3, 4])], "column tensors were sent too"),
        ([matrix([1, 2]), tensor("a", [1])], "given twice \\(once inside 'input'\\)"),
        ([matrix([2**70, 1], "INT64")], "row 1 of column 'a' does not fit INT64"),
        ([tensor("a", [1], "UINT8"), tensor("b", [300], "UINT8")], "row 1 of column 'b' does not fit UINT8"),
        ([tensor("a", [1], "INT8"), tensor("b", [-129], "INT8")], "does not fit INT8"),
        ([tensor("a", [-1], "UINT32"), tensor("b", [1], "UINT32")], "does not fit UINT32"),
        ([matrix([1.0, 2.0, 3.5e38, 1.0], "FP32")], "column 'a', row 2 is out of the range"),
        ([matrix([1.0, 70000.0], "FP16")], "column 'b', row 1 is out of the range"),
        ([matrix([1.0, 2.0, 3.0, float("inf")])], "column 'b', row 2 is infinite"),
        ([{"name": "input", "datatype": ["FP64"], "shape": [1, 2], "data": [1, 2]}], "unknown datatype"),
        ([{"name": "input", "datatype": {"a": 1}, "shape": [1, 2], "data": [1, 2]}], "unknown datatype"),
    ],
)
def test_duplicates_and_out_of_range_values_are_refused(inputs: list, message: str) -> None:
    with pytest.raises(InferenceError, match=message):
        decode_request({"inputs": inputs}, NUMERIC)


def test_values_past_the_models_precision_are_refused_naming_the_row() -> None:
    body = {"inputs": [matrix([1.0, 2.0, 1e300, 4.0])]}
    assert decode_request(body, NUMERIC).frame()["a"].tolist() == [1.0, 1e300]  # a float64 model takes it
    fp32 = float(np.finfo(np.float32).max)
    with pytest.raises(InferenceError, match="input 'input': column 'a', row 2 is out of the range the model computes"):
        decode_request(body, NUMERIC, float_max=fp32)


def test_declared_shapes_are_checked_before_decoding() -> None:
    from gravityml.inference._tensors import check_declared

    check_declared(b'{"inputs": [{"name": "input", "shape": [10, 2], "data": []}]}', max_rows=10, n_features=2)
    with pytest.raises(InferenceError, match="too many rows"):
        check_declared(b'{"inputs": [{"name": "input", "shape" :[ 11 , 2], "data": [', max_rows=10, n_features=2)
    with pytest.raises(InferenceError, match="more values than the row limit"):
        check_declared(b'{"inputs": [{"shape": [10], "x": 1}, {"shape": [10]}, {"shape": [10]}]}', max_rows=10,
                       n_features=2)
    lying = b'{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [' + b"1," * 200_000 + b"1]}]}"
    with pytest.raises(InferenceError, match="far larger than its tensors' shapes declare"):
        check_declared(lying, max_rows=10, n_features=2)
    # A string value "shape" is no key: it does not count.
    check_declared(b'{"inputs": [{"name": "shape", "shape": [1], "datatype": "BYTES", "data": ["shape"]}]}',
                   max_rows=1, n_features=1)


def test_non_finite_outputs_are_refused_naming_output_and_row() -> None:
    from gravityml.inference._tensors import check_finite

    check_finite(pd.DataFrame({"prediction": ["a", "b"], "confidence": [0.5, 0.9]}), None)
    with pytest.raises(InferenceError, match="no finite 'confidence' for row 2"):
        check_finite(pd.DataFrame({"prediction": ["a", "b"], "confidence": [0.5, np.nan]}), None)
    with pytest.raises(InferenceError, match="no finite 'probabilities' for row 1"):
        check_finite(pd.DataFrame({"prediction": ["a"]}), pd.DataFrame({"a": [np.nan], "b": [np.nan]}))
