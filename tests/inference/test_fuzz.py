"""Thousands of malformed requests: never a 5xx, every error ``{"error": ...}``, no NaN in any body.

Three sources: schemathesis generates valid and deliberately invalid requests from the server's
own OpenAPI document (wrong types, missing fields, out-of-range shapes, odd path parameters) for
every operation (its pytest plugin does not load under this pytest, so the operations' strategies
are driven with hypothesis directly); a seeded mutation fuzzer breaks valid OIP bodies one field
or byte at a time, thousands of them over one keep-alive connection (schemathesis costs tens of ms
of generation per case, the mutator microseconds); and the hand-picked cases the review found.
"""

from __future__ import annotations

import copy
import json
import random
import socket
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from tests.inference.conftest import ADMIN_TOKEN, Server

AUTH = {"Authorization": "Bearer s3cret"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def check_body(response: Any) -> None:
    """Errors are ``{"error": ...}``; no body carries NaN or Infinity (JSON has neither)."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in the body of a {response.status_code}: {response.text[:200]}")

    def header(name: str) -> str:
        value = response.headers.get(name, "")  # schemathesis gives lists of values, httpx strings
        return str(value[0] if isinstance(value, list) and value else value or "")

    ctype = header("content-type")
    if ctype.startswith("application/json"):
        payload = json.loads(response.text, parse_constant=refuse)
        if response.status_code >= 400:
            assert isinstance(payload, dict) and set(payload) == {"error"}, response.text[:200]
    elif ctype == "application/octet-stream":  # the binary extension: a JSON header, then the tensors
        json.loads(response.content[: int(header("inference-header-content-length"))], parse_constant=refuse)
    else:
        assert response.status_code < 400 or response.status_code == 204, (response.status_code, ctype)
#: Cases per operation and generation mode: inference gets most of them.
EXAMPLES = {"/v2/models/{name}/infer": 120, "/v2/models/{name}/versions/{version}/infer": 40}
#: Requests the mutation fuzzer sends.
MUTATIONS = 3200


def test_no_generated_request_gets_a_5xx(server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES.get(operation.path, 6), deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case: schemathesis.Case) -> None:
                if case.path_parameters and "name" in case.path_parameters and sum(statuses.values()) % 4:
                    case.path_parameters["name"] = "iris"  # most cases reach a real model (and version)
                    if "version" in case.path_parameters:
                        case.path_parameters["version"] = "1"
                # The load endpoint is called with the inference token: refused (401) before any store is read.
                response = case.call(headers=AUTH, timeout=30)
                statuses[response.status_code] += 1
                assert response.status_code < 500, (case.method, case.path, case.body, response.text[:300])
                check_body(response)

            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without inputs has nothing to break
    print(f"fuzz: {sum(statuses.values())} requests, status codes {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) >= 300
    assert statuses[400] > 50 and statuses[200] > 0  # both kinds of answers were reached


#: Values the mutator puts where a field was: wrong types, range edges, NaN and infinity, odd text.
WEIRD: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 2**63, 2**64, 2**70, -(2**70), 10**400, 0.5, -0.0, 1e38, 3.5e38, 1e300,
    float("nan"), float("inf"), -float("inf"), "", "FP64", "FP32", "INT64", "UINT8", "BYTES", "BOOL", "input",
    "prediction", "probabilities", "x" * 3000, "\u00b2", "\ud7ff\u0000", [], [[]], [[[1]]], {}, {"a": 1}, [1, 2, 3],
    ["FP64"], [-1], [0], [1, 4], [10**9, 4], [1, 4, 1], {"binary_data_size": 16}, {"binary_data": True},
    {"probabilities": True}, {"binary_data_output": True},
]


def _slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((node, key))
            _slots(value, out)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((node, i))
            _slots(value, out)
    return out


def mutate(rng: random.Random, body: dict[str, Any]) -> bytes:
    tree = copy.deepcopy(body)
    for _ in range(rng.randint(1, 3)):
        slots = _slots(tree, [])
        if not slots:
            break
        container, key = rng.choice(slots)
        action = rng.random()
        if action < 0.6:
            container[key] = copy.deepcopy(rng.choice(WEIRD))
        elif action < 0.75 and isinstance(container, dict):
            del container[key]
        elif action < 0.85 and isinstance(container, list):
            container.append(copy.deepcopy(container[key]))  # a duplicated tensor, value or dimension
        elif isinstance(container, dict):
            container[rng.choice(["name", "shape", "datatype", "data", "parameters", "outputs", "id", "zz"])] = (
                copy.deepcopy(rng.choice(WEIRD)))
        else:
            container[key] = [container[key]]
    raw = json.dumps(tree).encode()  # NaN and Infinity go out as the tokens Python's json reads back
    if rng.random() < 0.1:  # byte-level damage
        at = rng.randrange(len(raw))
        raw = raw[:at] + bytes([rng.randrange(256)]) * rng.randint(0, 3) + raw[at + rng.randint(0, 2):]
    return raw


def seeds(server: Server) -> list[tuple[str, dict[str, Any]]]:
    iris = [i["name"] for i in httpx.get(f"{server.url}/v2/models/iris", headers=AUTH).json()["inputs"]]
    row = [5.1, 3.5, 1.4, 0.2]
    return [
        (INFER, {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": [row, row]}]}),
        ("/v2/models/iris/versions/1/infer", {"id": "r1", "inputs": [{"name": "input", "shape": [1, 4],
                                              "datatype": "FP32", "data": row}], "outputs": [{"name": "prediction"}]}),
        (INFER, {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in zip(iris, row)],
                 "parameters": {"probabilities": True}}),
        ("/v2/models/loans/infer", {"inputs": [
            {"name": "size", "shape": [1, 1], "datatype": "FP64", "data": [[10.0]]},
            {"name": "region", "shape": [1], "datatype": "BYTES", "data": ["north"]},
            {"name": "note", "shape": [1], "datatype": "BYTES", "data": ["paid early"]},
        ], "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}),
        ("/invocations?model=iris", {"dataframe_split": {"columns": iris, "data": [row, row]}}),
        ("/invocations?model=iris", {"instances": [dict(zip(iris, row))]}),
        ("/invocations?model=loans", {"dataframe_records": [{"size": 3.0, "region": "east", "note": "new customer"}]}),
        ("/invocations?model=loans", {"inputs": {"size": [1.0], "region": ["north"], "note": ["paid early"]}}),
    ]


def test_thousands_of_mutated_requests_get_no_5xx(server: Server) -> None:
    rng = random.Random(11)
    statuses: Counter[int] = Counter()
    bases = seeds(server)
    headers = [{}, {}, {}, {"Inference-Header-Content-Length": "12"}, {"Inference-Header-Content-Length": "\u00b3"},
               {"Content-Type": "application/octet-stream"}, {"Content-Type": "text/plain"}]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for i in range(MUTATIONS):
            path, body = bases[i % len(bases)]
            extra = {k: v.encode("latin-1") for k, v in rng.choice(headers).items()}
            raw = mutate(rng, body) if i >= len(bases) else json.dumps(body).encode()
            response = client.post(path, content=raw, headers={**AUTH, "Content-Type": "application/json", **extra})
            statuses[response.status_code] += 1
            assert response.status_code < 500, (path, raw[:300], response.text[:300])
            check_body(response)
    print(f"mutations: {sum(statuses.values())} requests, status codes {dict(sorted(statuses.items()))}")
    assert statuses[200] >= len(bases) and statuses[400] > MUTATIONS // 2


INFER = "/v2/models/iris/infer"
ROW = [5.1, 3.5, 1.4, 0.2]


def tensor(**fields: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW, **fields}]}


#: The cases the review found (and their neighbours): (path, headers, body).
HAND_PICKED: list[tuple[str, dict[str, Any], Any]] = [
    (INFER, {}, tensor(datatype=["FP64"])),
    (INFER, {}, tensor(datatype={"FP64": 1})),
    (INFER, {}, tensor(datatype=None)),
    (INFER, {"Inference-Header-Content-Length": "\u00b9\u00b2".encode("latin-1")}, tensor()),
    (INFER, {"Inference-Header-Content-Length": "\u0661".encode()}, tensor()),
    (INFER, {"Inference-Header-Content-Length": "-1"}, tensor()),
    (INFER, {"Inference-Header-Content-Length": "9" * 40}, tensor()),
    (INFER, {}, tensor(data=[1e300, 1, 1, 1])),
    (INFER, {}, tensor(datatype="FP32", data=[3.5e38, 1, 1, 1])),
    (INFER, {}, tensor(datatype="FP16", data=[1e5, 1, 1, 1])),
    (INFER, {}, tensor(datatype="INT64", data=[2**70, 1, 1, 1])),
    (INFER, {}, tensor(datatype="UINT8", data=[300, 1, 1, 1])),
    (INFER, {}, tensor(datatype="INT64", data=[10**400, 1, 1, 1])),
    (INFER, {}, tensor(data=[10**400, 1, 1, 1])),
    (INFER, {}, {"inputs": tensor()["inputs"] * 2}),
    (INFER, {}, tensor(shape=[10**30, 4])),
    (INFER, {}, tensor(shape=[1, 4], parameters={"binary_data_size": 10**30})),
    (INFER, {}, b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [NaN, 1, 1, 1]}]}'),
    (INFER, {}, b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [-Infinity, 1, 1, 1]}]}'),
    (INFER, {}, b"[" * 100_000),
    (INFER, {}, b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "BYTES", "data": ["\\ud800", 1, 1, 1]}]}'),
    (INFER, {}, {**tensor(), "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}),
    (INFER, {}, {**tensor(), "parameters": {"binary_data_output": True, "probabilities": True}}),
    (INFER, {"Content-Type": "multipart/form-data; boundary=x"}, tensor()),
    (INFER, {"Content-Type": "application/json; charset=utf-8"}, tensor()),
    ("/v2/models/iris/versions/%F0%9F%92%A5/infer", {}, tensor()),
    ("/v2/models/" + "x" * 3000 + "/infer", {}, tensor()),
    ("/invocations?model=loans", {}, {"dataframe_records": [{"size": 10**400, "region": "east", "note": "x"}]}),
    ("/invocations?model=iris", {}, {"instances": [[1e300, 1, 1, 1]]}),
    ("/invocations?model=iris", {}, {"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}),
    ("/invocations?model=iris", {"Content-Type": "text/csv"}, b"a,b\n1,\xff\n\"unclosed"),
    ("/v2/repository/models/iris/load", ADMIN, {"parameters": {"ref": "x" * 3000}}),
    ("/v2/repository/models/iris/load", ADMIN, {"parameters": {"ref": "/etc/passwd"}}),
    ("/v2/repository/models/iris/load", ADMIN, {"parameters": {"ref": "../../iris"}}),
    ("/v2/repository/models/iris/load", ADMIN, {"parameters": {"ref": ["iris"]}}),
    ("/v2/repository/models/iris/load", ADMIN, {"parameters": {"ref": "nope/1"}}),
    ("/v2/repository/models/iris/load", ADMIN, b"\xff\xfe"),
    ("/v2/repository/models/" + "y" * 3000 + "/load", ADMIN, {}),
]


@pytest.mark.parametrize(("path", "headers", "body"), HAND_PICKED, ids=range(len(HAND_PICKED)))
def test_hand_picked_cases_get_a_4xx_or_a_finite_answer(server: Server, path: str, headers: dict[str, Any],
                                                        body: Any) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {**AUTH, "Content-Type": "application/json", **headers}
    response = httpx.post(f"{server.url}{path}", headers=sent, content=content, timeout=60)
    assert response.status_code < 500, response.text[:300]
    check_body(response)


def test_405_404_and_422_from_the_framework_are_json(server: Server) -> None:
    for response in (
        httpx.get(f"{server.url}{INFER}", headers=AUTH),
        httpx.delete(f"{server.url}/v2/models/iris", headers=AUTH),
        httpx.get(f"{server.url}/v2/no/such/path", headers=AUTH),
        httpx.get(f"{server.url}/v2/models/iris/versions/", headers=AUTH),
    ):
        assert response.status_code in (404, 405), response.text
        check_body(response)


def test_a_client_gone_mid_body_is_not_counted_as_a_500(server: Server) -> None:
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(f"POST {INFER} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                         "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode())
    metrics = httpx.get(f"{server.url}/metrics", headers=AUTH, timeout=30).text
    assert 'code="500"' not in metrics
