"""The OpenAPI document is valid OpenAPI 3.1 and names exactly the app's routes and methods."""

from __future__ import annotations

import re

from openapi_spec_validator import validate
from starlette.routing import Route

from lockservice.http import create_app
from lockservice.http.openapi import openapi_document
from lockservice.http.openapi_schemas import KEY
from lockservice.http.routes import KeyedRoute
from tests.http.support import document, documented_operations


def _app_operations() -> set[tuple[str, str]]:
    operations: set[tuple[str, str]] = set()
    for route in create_app(target="127.0.0.1:1").routes:
        if isinstance(route, KeyedRoute):
            operations |= route.operations
            continue
        assert isinstance(route, Route)
        operations |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    return operations


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert openapi_document("/lockservice")["servers"] == [{"url": "/lockservice"}]


def test_the_document_names_exactly_the_routes() -> None:
    assert documented_operations() == _app_operations()


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
