"""The OIP gRPC service, called by tritonclient's gRPC client unmodified, beside REST on one server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from tests.inference.conftest import Server, free_port

METADATA = {"authorization": "Bearer s3cret"}


@pytest.fixture(scope="module")
def served(trained: Path) -> Iterator[tuple[Server, int]]:
    port = free_port()
    srv = Server(trained, "iris", "loans@production", "--token", "s3cret", "--grpc-port", str(port))
    yield srv, port
    srv.stop()


def test_tritonclient_grpc_infers_reads_metadata_config_and_statistics(served: tuple[Server, int]) -> None:
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    server, port = served
    client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
    assert client.is_server_live() and client.is_server_ready()
    with pytest.raises(InferenceServerException, match="bearer token"):
        client.get_model_metadata("iris")
    assert client.is_model_ready("iris", headers=METADATA)
    meta = client.get_model_metadata("iris", headers=METADATA)
    names = [i.name for i in meta.inputs]
    rows = load_iris().data[[0, 1, 60, 61, 120, 121]]
    matrix = triton.InferInput("input", list(rows.shape), "FP32")  # raw_input_contents
    matrix.set_data_from_numpy(rows.astype(np.float32))
    outputs = [triton.InferRequestedOutput(n) for n in ("prediction", "confidence", "probabilities")]
    result = client.infer("iris", [matrix], outputs=outputs, headers=METADATA)
    labels = [v.decode() for v in result.as_numpy("prediction")]
    assert labels == ["setosa", "setosa", "versicolor", "versicolor", "virginica", "virginica"]
    proba = result.as_numpy("probabilities")
    np.testing.assert_allclose(result.as_numpy("confidence"), proba.max(axis=1))
    # The same rows over REST: the same answers.
    rest = httpx.post(f"{server.url}/v2/models/iris/infer", headers={"Authorization": "Bearer s3cret"}, json={
        "inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.tolist()}]}).json()
    assert rest["outputs"][0]["data"] == labels
    bad = triton.InferInput("input", [1, 4], "FP32")
    bad.set_data_from_numpy(np.array([[np.inf, 1, 1, 1]], dtype=np.float32))
    with pytest.raises(InferenceServerException, match="infinite"):
        client.infer("iris", [bad], headers=METADATA)
    config = client.get_model_config("iris", headers=METADATA, as_json=True)["config"]
    assert config["name"] == "iris" and [i["name"] for i in config["input"]] == names
    stats = client.get_inference_statistics("iris", headers=METADATA, as_json=True)["model_stats"][0]
    assert int(stats["inference_stats"]["success"]["count"]) >= 1 and int(stats["inference_stats"]["fail"]["count"]) >= 1
    with pytest.raises(InferenceServerException, match="not served"):
        client.get_model_metadata("nope", headers=METADATA)
    client.close()
    metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer s3cret"}).text
    assert 'gravityml_inference_requests_total{code="grpc_OK",model="iris"}' in metrics  # metrics shared with REST


def test_typed_contents_as_the_protocol_has_them(served: tuple[Server, int]) -> None:
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pb_grpc

    _, port = served
    rows = load_iris().data[[0, 120]]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="loans", id="r9")
        for name, datatype, values in (("size", "FP64", [10.0, 3.0]), ("region", "BYTES", [b"north", b"south"]),
                                       ("note", "BYTES", [b"paid early", b"late payment twice"])):
            tensor = request.inputs.add(name=name, datatype=datatype, shape=[2])
            getattr(tensor.contents, "fp64_contents" if datatype == "FP64" else "bytes_contents").extend(values)
        response = stub.ModelInfer(request, metadata=tuple(METADATA.items()))
        assert response.id == "r9" and response.model_version == "1"
        assert [o.name for o in response.outputs][:2] == ["prediction", "confidence"]
        matrix = pb.ModelInferRequest(model_name="iris")
        tensor = matrix.inputs.add(name="input", datatype="FP64", shape=list(rows.shape))
        tensor.contents.fp64_contents.extend(rows.ravel().tolist())
        response = stub.ModelInfer(matrix, metadata=tuple(METADATA.items()))
        raw = response.raw_output_contents[0]
        labels = [raw[4:10].decode(), raw[14:].decode()]
        assert labels == ["setosa", "virginica"]
