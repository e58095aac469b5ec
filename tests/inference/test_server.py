"""The OIP server as a client sees it: a real process on 127.0.0.1, called over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from tests.inference.conftest import Server, mixed_frame

AUTH = {"Authorization": "Bearer s3cret"}


def iris_rows(n: int) -> np.ndarray:
    return load_iris().data[:: max(1, 150 // n)][:n]


def column_request(rows: np.ndarray, names: list[str], **extra: object) -> dict:
    return {"inputs": [{"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[:, j].tolist()}
                       for j, c in enumerate(names)], **extra}


def iris_names(server: Server) -> list[str]:
    meta = httpx.get(f"{server.url}/v2/models/iris", headers=AUTH).json()
    return [i["name"] for i in meta["inputs"]]


def test_tritonclient_reads_predictions_and_confidences(server: Server) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    headers = dict(AUTH)
    assert client.is_server_live(headers=headers)
    assert client.is_model_ready("iris", headers=headers)
    meta = client.get_model_metadata("iris", headers=headers)
    names = [i["name"] for i in meta["inputs"]]
    rows = iris_rows(6)
    inputs = []
    for j, name in enumerate(names):
        tensor = triton.InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(rows[:, j].astype(np.float64), binary_data=False)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(n, binary_data=False) for n in ("prediction", "confidence", "probabilities")]
    result = client.infer("iris", inputs, outputs=outputs, headers=headers)
    labels = result.as_numpy("prediction")
    confidence = result.as_numpy("confidence")
    proba = result.as_numpy("probabilities")
    assert proba.shape == (6, 3)
    np.testing.assert_allclose(confidence, proba.max(axis=1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    # Rows 0-1 are setosa, 2-3 versicolor, 4-5 virginica in iris order: the model gets them right.
    decoded = [v.decode() if isinstance(v, bytes) else str(v) for v in labels]
    assert decoded == ["setosa", "setosa", "versicolor", "versicolor", "virginica", "virginica"]
    client.close()


def test_tritonclient_defaults_use_the_binary_extension(server: Server) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    tensor = triton.InferInput("input", [3, 4], "FP32")
    tensor.set_data_from_numpy(iris_rows(3).astype(np.float32))  # binary_data=True by default
    # tritonclient writes its binary header into the dict it is given: pass a copy.
    result = client.infer("iris", [tensor], headers=dict(AUTH))  # no outputs named: all come back binary
    assert [v.decode() for v in result.as_numpy("prediction")] == ["setosa", "versicolor", "virginica"]
    assert result.as_numpy("confidence").dtype == np.float64 and (result.as_numpy("confidence") > 0.5).all()
    client.close()


def test_matrix_input_matches_column_inputs(server: Server) -> None:
    rows = iris_rows(10)
    by_column = httpx.post(f"{server.url}/v2/models/iris/infer", headers=AUTH, json=column_request(rows, iris_names(server)))
    matrix = httpx.post(f"{server.url}/v2/models/iris/versions/1/infer", headers=AUTH, json={
        "id": "req-7", "inputs": [{"name": "input", "shape": [10, 4], "datatype": "FP32", "data": rows.tolist()}]})
    assert by_column.status_code == matrix.status_code == 200
    assert matrix.json()["id"] == "req-7"
    a, b = by_column.json()["outputs"], matrix.json()["outputs"]
    assert a[0]["data"] == b[0]["data"]
    np.testing.assert_allclose(a[1]["data"], b[1]["data"], rtol=1e-5)


def test_every_column_kind_and_alias(server: Server) -> None:
    frame = mixed_frame(8, seed=5)
    meta = httpx.get(f"{server.url}/v2/models/loans", headers=AUTH).json()
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert types == {"size": "FP64", "region": "BYTES", "note": "BYTES"}
    assert meta["parameters"]["ref"] == "loans@production"
    body = {"inputs": [
        {"name": "size", "shape": [8, 1], "datatype": "FP64", "data": [[None if np.isnan(v) else v] for v in frame["size"]]},
        {"name": "region", "shape": [8], "datatype": "BYTES", "data": frame["region"].tolist()},
        {"name": "note", "shape": [8], "datatype": "BYTES", "data": frame["note"].tolist()},
    ], "parameters": {"probabilities": True}}
    response = httpx.post(f"{server.url}/v2/models/loans/infer", headers=AUTH, json=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert set(outputs["prediction"]["data"]) <= {"approve", "review"}
    assert outputs["probabilities"]["parameters"]["classes"] == ["approve", "review"]
    assert all(0.5 <= c <= 1 for c in outputs["confidence"]["data"])


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"", 400, "no body"),
        (b"[1, 2]", 400, "JSON object"),
        (json.dumps({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}).encode(), 400, "shape must be [n, 4]"),
        (json.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": [1] * 7}]}).encode(), 400, "holds 8 values"),
        (json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "BOOL", "data": [True] * 4}]}).encode(), 400, "datatype BOOL"),
        (json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ["a", 1, 2, 3]}]}).encode(), 400, "must be numbers"),
        (b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [NaN, 1, 2, 3]}]}', 400, "NaN"),
        (b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [Infinity, 1, 2, 3]}]}', 400, "infinite"),
        (json.dumps({"inputs": [{"name": "petal", "shape": [1], "datatype": "FP64", "data": [1]}]}).encode(), 400, "unknown input tensor 'petal'"),
        (json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
                     "outputs": [{"name": "logits"}]}).encode(), 400, "unknown output 'logits'"),
    ],
)
def test_bad_requests_get_400_naming_the_problem(server: Server, body: bytes, status: int, needle: str) -> None:
    response = httpx.post(f"{server.url}/v2/models/iris/infer", headers=AUTH, content=body)
    assert response.status_code == status
    assert needle in response.json()["error"]


def test_unknown_model_or_version_is_404(server: Server) -> None:
    assert httpx.get(f"{server.url}/v2/models/nope", headers=AUTH).status_code == 404
    response = httpx.post(f"{server.url}/v2/models/iris/versions/9/infer", headers=AUTH, json={"inputs": []})
    assert response.status_code == 404 and "no version '9'" in response.json()["error"]
    assert httpx.get(f"{server.url}/v2/nothing/here", headers=AUTH).json() == {"error": "Not Found"}


def test_auth_body_limit_metrics_and_openapi(server: Server) -> None:
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200  # probes stay open
    assert httpx.get(f"{server.url}/v2/models/iris").status_code == 401
    assert httpx.get(f"{server.url}/v2/models/iris", headers={"Authorization": "Bearer wrong"}).status_code == 401
    big = b'{"inputs": [' + b" " * (17 * 1024 * 1024) + b"]}"
    assert httpx.post(f"{server.url}/v2/models/iris/infer", headers=AUTH, content=big).status_code == 413
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert "/v2/models/{name}/infer" in paths and "/v2/repository/models/{name}/load" in paths
    text = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    assert 'gravityml_http_requests_total{code="401"' in text
    assert 'gravityml_inference_requests_total{code="200",model="iris"}' in text
    assert "gravityml_batch_rows_bucket" in text and "gravityml_http_request_duration_seconds_bucket" in text
    log_lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    assert any(e["status"] == 413 and e["path"] == "/v2/models/iris/infer" for e in log_lines)


def test_concurrent_requests_are_batched(server: Server) -> None:
    names = iris_names(server)
    rows = iris_rows(30)
    results: list[httpx.Response] = []

    def call(i: int) -> None:
        results.append(httpx.post(f"{server.url}/v2/models/iris/infer", headers=AUTH,
                                  json=column_request(rows[i : i + 1], names), timeout=30))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 30
    metrics = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    count = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith('gravityml_batch_requests_count{model="iris"}'))
    total = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith('gravityml_batch_requests_sum{model="iris"}'))
    assert total / count > 1.0  # some model calls served more than one request


def _live_latencies(server: Server, stop: threading.Event) -> list[float]:
    import time

    seen: list[float] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while not stop.is_set():
            start = time.perf_counter()
            assert client.get("/v2/health/live").status_code == 200
            seen.append(time.perf_counter() - start)
            time.sleep(0.01)
    return seen


def _while_live_polled(server: Server, call: Callable[[], httpx.Response]) -> tuple[httpx.Response, list[float]]:
    stop = threading.Event()
    latencies: list[list[float]] = []
    poller = threading.Thread(target=lambda: latencies.append(_live_latencies(server, stop)))
    poller.start()
    try:
        response = call()
    finally:
        stop.set()
        poller.join()
    return response, latencies[0]


def test_a_16mb_request_is_refused_before_decoding_and_health_answers_meanwhile(server: Server) -> None:
    import time

    rows = 1_000_000
    big = b'{"inputs": [{"name": "input", "shape": [%d, 4], "datatype": "FP64", "data": [' % rows
    big += b"1.5," * (rows * 4 - 1) + b"1.5]}]}"
    assert 15 * 2**20 < len(big) < 16 * 2**20
    start = time.perf_counter()
    response, latencies = _while_live_polled(
        server, lambda: httpx.post(f"{server.url}/v2/models/iris/infer", headers=AUTH, content=big, timeout=60))
    took = time.perf_counter() - start
    assert response.status_code == 400 and "too many rows" in response.json()["error"]
    # Decoding this body takes seconds (the issue measured 5.7 s); the scan before it milliseconds.
    # Timings are printed, not asserted (a loaded machine is slow at everything).
    print(f"16 MB refused in {took * 1000:.0f} ms; /v2/health/live max {max(latencies) * 1000:.1f} ms "
          f"over {len(latencies)} calls")
    entry = [json.loads(line) for line in server.output().splitlines() if line.startswith("{") and "too many rows" in line]
    assert entry and entry[-1]["status"] == 400


def test_a_large_valid_request_is_decoded_off_the_event_loop(server: Server) -> None:
    rows = iris_rows(150)
    data = np.tile(rows, (600, 1))  # 90,000 rows, about 1.7 MB of JSON
    body = {"inputs": [{"name": "input", "shape": list(data.shape), "datatype": "FP64", "data": data.tolist()}],
            "outputs": [{"name": "prediction"}]}
    response, latencies = _while_live_polled(
        server, lambda: httpx.post(f"{server.url}/v2/models/iris/infer", headers=AUTH, json=body, timeout=120))
    assert response.status_code == 200 and response.json()["outputs"][0]["shape"] == [90_000]
    assert len(latencies) > 1  # health kept answering while the request was decoded and predicted
    print(f"90,000 rows: /v2/health/live max {max(latencies) * 1000:.1f} ms over {len(latencies)} calls")


@pytest.mark.parametrize(
    ("headers", "body", "status", "needle"),
    [
        ({"Inference-Header-Content-Length": "\u00b9\u00b2".encode("latin-1")}, b'{"inputs": []}', 400, "ASCII digits"),
        ({"Inference-Header-Content-Length": "99999"}, b'{"inputs": []}', 400, "byte length of the JSON part"),
        ({}, json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": ["FP64"], "data": [1] * 4}]}).encode(),
         400, "unknown datatype"),
        ({}, json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1] * 4}] * 2}).encode(),
         400, "given twice"),
        ({}, json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "INT64", "data": [2**70, 1, 1, 1]}]}).encode(),
         400, "does not fit INT64"),
        ({}, json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "UINT8", "data": [300, 1, 1, 1]}]}).encode(),
         400, "does not fit UINT8"),
        ({}, json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [3.5e38, 1, 1, 1]}]}).encode(),
         400, "row 1 is out of the range"),
        ({"Content-Type": "text/plain"}, b'{"inputs": []}', 415, "application/json"),
    ],
)
def test_what_used_to_be_a_500_or_a_wrong_answer_is_a_400(server: Server, headers: dict, body: bytes, status: int,
                                                           needle: str) -> None:
    response = httpx.post(f"{server.url}/v2/models/iris/infer", headers={**AUTH, **headers}, content=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]


def test_a_client_that_disconnects_is_no_500(server: Server) -> None:
    import socket
    import time

    before = httpx.get(f"{server.url}/metrics", headers=AUTH).text.count('code="500"')
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"inputs\": [")
            time.sleep(0.1)
    time.sleep(0.5)
    metrics = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    assert metrics.count('code="500"') == before == 0
    assert 'gravityml_http_requests_total{code="499",method="POST",route="/v2/models/{name}/infer"} 3.0' in metrics
    assert "Exception in ASGI application" not in server.output()


def test_load_refuses_paths_foreign_origins_and_missing_admin_tokens(server: Server, trained: Path) -> None:
    from tests.inference.conftest import ADMIN_TOKEN

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    load = f"{server.url}/v2/repository/models/iris/load"
    folder = next((trained / "cache").rglob("gravityml.json"), None) if (trained / "cache").exists() else None
    path = str(folder.parent if folder else trained)
    refused_path = httpx.post(load, headers=admin, json={"parameters": {"ref": path}})
    assert refused_path.status_code == 400 and "neither a registry reference" in refused_path.json()["error"]
    long_ref = httpx.post(load, headers=admin, json={"parameters": {"ref": "x" * 3000}})
    assert long_ref.status_code == 400
    assert httpx.post(load, json={}).status_code == 401
    assert httpx.post(load, headers=AUTH, json={}).status_code == 401  # the inference token is not the admin's
    form = httpx.post(load, headers={**admin, "Origin": "http://evil.example"}, data={"parameters": "x"})
    assert form.status_code == 403 and "cross-origin" in form.json()["error"]
    other = httpx.post(load, headers=admin, json={"parameters": {"ref": "loans/1"}})
    assert other.status_code == 400 and "not 'iris'" in other.json()["error"]  # a registry ref is read
    assert httpx.post(f"{server.url}/v2/repository/index", headers=AUTH).status_code == 200


def test_tritonclient_reads_config_and_statistics(server: Server) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    tensor = triton.InferInput("input", [2, 4], "FP64")
    tensor.set_data_from_numpy(iris_rows(2))
    client.infer("iris", [tensor], headers=dict(AUTH))
    config = client.get_model_config("iris", headers=dict(AUTH))
    assert config["name"] == "iris" and config["max_batch_size"] == 64
    assert [i["name"] for i in config["input"]] == iris_names(server)
    assert {o["name"] for o in config["output"]} >= {"prediction", "confidence"}
    stats = client.get_inference_statistics("iris", headers=dict(AUTH))["model_stats"]
    assert [s["version"] for s in stats] == ["1"]
    assert stats[0]["inference_stats"]["success"]["count"] >= 1 and stats[0]["execution_count"] >= 1
    everything = client.get_inference_statistics(headers=dict(AUTH))["model_stats"]
    assert {s["name"] for s in everything} == {"iris", "loans"}
    client.close()


def test_mlflow_scoring_protocol_on_invocations(server: Server, trained: Path) -> None:
    from tests.inference.conftest import workspace_env

    from gravityml.inference import load

    names = iris_names(server)
    rows = iris_rows(6)
    with workspace_env(trained):
        import pandas as pd

        expected = load("iris/1").predict(pd.DataFrame(rows, columns=names))
    url = f"{server.url}/invocations?model=iris"
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": names, "data": rows.tolist()}},
        "dataframe_records": {"dataframe_records": [dict(zip(names, r)) for r in rows.tolist()]},
        "instances": {"instances": [dict(zip(names, r)) for r in rows.tolist()]},
        "inputs": {"inputs": {n: rows[:, j].tolist() for j, n in enumerate(names)}},
    }
    for key, body in bodies.items():
        response = httpx.post(url, headers=AUTH, json=body)
        assert response.status_code == 200, (key, response.text)
        predictions = response.json()["predictions"]
        assert [p["prediction"] for p in predictions] == expected["prediction"].tolist(), key
        np.testing.assert_allclose([p["confidence"] for p in predictions], expected["confidence"], rtol=1e-9)
    csv = "\n".join([",".join(names), *(",".join(map(str, r)) for r in rows.tolist())])
    as_csv = httpx.post(url, headers={**AUTH, "Content-Type": "text/csv"}, content=csv)
    assert as_csv.status_code == 200 and len(as_csv.json()["predictions"]) == 6
    ambiguous = httpx.post(f"{server.url}/invocations", headers=AUTH, json=bodies["instances"])
    assert ambiguous.status_code == 400 and "?model=NAME" in ambiguous.json()["error"]
    for bad, needle in [
        ({"dataframe_split": {"columns": names, "data": [[1.0, 2.0]]}}, "must be a list of 4 values"),
        ({"instances": [[1.0, 2.0, 3.0, float("inf")]]}, "row 1 is infinite"),
        ({"instances": [], "inputs": []}, "exactly one of"),
        ({"dataframe_records": [{"nope": 1}]}, names[0]),
    ]:
        response = httpx.post(url, headers={**AUTH, "Content-Type": "application/json"}, content=json.dumps(bad))
        assert response.status_code == 400 and needle in response.json()["error"], (bad, response.text)
