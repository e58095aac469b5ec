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
