"""The OpenAPI document is valid OpenAPI 3.1 and names exactly the app's routes and methods."""

from __future__ import annotations

import json
import re
from typing import Any

from openapi_spec_validator import validate

from lockservice.core.limits import Limits
from lockservice.core.validation import check_lease_id
from lockservice.errors import InvalidArgument
from lockservice.http.openapi import openapi_document
from lockservice.http.openapi_schemas import KEY
from tests.http.support import app_operations, document, documented_operations


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert openapi_document("/lockservice")["servers"] == [{"url": "/lockservice"}]


def test_the_document_names_exactly_the_routes() -> None:
    assert documented_operations() == app_operations()


def test_every_error_answer_is_problem_json_and_every_operation_is_unique() -> None:
    operation_ids = []
    for item in document()["paths"].values():
        for operation in item.values():
            operation_ids.append(operation["operationId"])
            responses = operation["responses"]
            assert responses["default"] == {"$ref": "#/components/responses/Problem"}
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    assert response["$ref"] in (
                        "#/components/responses/Problem",
                        "#/components/responses/Conflict",
                    )
    assert len(set(operation_ids)) == len(operation_ids)


def test_the_key_pattern_is_the_key_syntax() -> None:
    pattern = re.compile(str(KEY["pattern"]))
    for key in ("a", "orders/42", ".env", "a/.b/c..", "x:y@z+=,!~_-"):
        assert pattern.fullmatch(key), key
    for key in ("", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "sp ace", "st*r"):
        assert not pattern.fullmatch(key), key


def _schemas(limits: Limits | None = None) -> Any:
    return json.loads(json.dumps(openapi_document(limits=limits)))["components"]


def test_lease_ids_are_described_as_the_service_checks_them() -> None:
    parameters = _schemas()["parameters"]
    pattern = re.compile(parameters["LeaseId"]["schema"]["pattern"])
    for lease_id in ("0" * 32, "ab" * 24, "", "0" * 31, "0" * 40, "A" * 32, "g" * 32):
        valid = pattern.search(lease_id) is not None
        try:
            check_lease_id(lease_id)
        except InvalidArgument:
            assert not valid, lease_id
        else:
            assert valid, lease_id


def test_ranges_are_the_servers_limits() -> None:
    limits = Limits(
        max_key_bytes=100, max_lease_ttl_seconds=60, max_lock_wait_seconds=5, max_request_id_chars=9
    )
    components = _schemas(limits)
    schemas, parameters = components["schemas"], components["parameters"]
    assert parameters["Key"]["schema"]["maxLength"] == 100
    grant = schemas["GrantLeaseRequest"]["properties"]["ttl_seconds"]
    assert (grant["minimum"], grant["maximum"]) == (1, 60)
    acquire = schemas["AcquireLockRequest"]["properties"]
    assert acquire["wait_timeout_seconds"]["maximum"] == 5
    assert acquire["lock_delay_seconds"]["maximum"] == limits.max_lock_delay_seconds
    assert schemas["ReleaseLockRequest"]["properties"]["token"]["minimum"] == 1
    assert schemas["RequestIdBody"]["properties"]["request_id"]["maxLength"] == 9
    assert parameters["PageSize"]["schema"]["minimum"] == 0
    assert schemas["TransactRequest"]["properties"]["operations"]["minItems"] == 1


def test_the_fence_token_header_is_1_to_the_int64_maximum() -> None:
    pattern = re.compile(_schemas()["parameters"]["FenceToken"]["schema"]["pattern"])
    for token in ("1", "9", "10", "007", str(2**63 - 1), str(2**63 - 2), "8" * 19):
        assert pattern.search(token), token
    for token in ("", "0", "00", "-1", str(2**63), "9" * 19, "1" * 20, "1.0"):
        assert not pattern.search(token), token


def test_every_error_status_is_problem_json_and_values_and_watch_have_their_types() -> None:
    paths = document()["paths"]
    for path, item in paths.items():
        for operation in item.values():
            if path.startswith("/v1/resources") or path.startswith(("/v1/locks", "/v1/leases")):
                assert {"400", "401", "403", "429", "500", "503", "504"} <= set(operation["responses"]), path
    assert paths["/v1/resources/{key}"]["get"]["responses"]["200"]["content"] == {"*/*": {}}
    assert list(paths["/v1/resources:watch"]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]
