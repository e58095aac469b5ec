"""Thousands of generated requests from the server's own OpenAPI document: never a 5xx.

Schemathesis generates valid and deliberately invalid requests (wrong types, missing fields,
out-of-range shapes, odd path parameters) for every operation; a crashed handler would answer 500.
(Its pytest plugin does not load under this pytest, so the operations' strategies are driven with
hypothesis directly.)
"""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.inference.conftest import Server

AUTH = {"Authorization": "Bearer s3cret"}
#: Cases per operation and generation mode: inference gets most of them.
EXAMPLES = {"/v2/models/{name}/infer": 900, "/v2/models/{name}/versions/{version}/infer": 300}


def test_no_generated_request_gets_a_5xx(server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/v2/repository/models/{name}/load":
            continue  # reloading is exercised in test_lifecycle; fuzzing it would only re-read the store
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES.get(operation.path, 12), deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case: schemathesis.Case) -> None:
                if case.path_parameters and "name" in case.path_parameters and sum(statuses.values()) % 4:
                    case.path_parameters["name"] = "iris"  # most cases reach a real model (and version)
                    if "version" in case.path_parameters:
                        case.path_parameters["version"] = "1"
                response = case.call(headers=AUTH, timeout=30)
                statuses[response.status_code] += 1
                assert response.status_code < 500, (case.method, case.path, case.body, response.text[:300])
                if response.status_code >= 400:
                    assert "error" in response.json()

            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without inputs has nothing to break
    print(f"fuzz: {sum(statuses.values())} requests, status codes {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) >= 2000
    assert statuses[400] > 100 and statuses[200] > 0  # both kinds of answers were reached
