"""JSON bodies read field by field (exact types, unknown fields refused) and turned into the
protobuf requests, with one member per oneof."""

from __future__ import annotations

from typing import Any

import pytest

from lockservice.http import json_requests
from lockservice.http.bodies import JsonFields
from lockservice.http.failures import RequestRejected
from lockservice.v1 import lock_pb2, resource_pb2


def fields(data: dict[str, Any], allowed: tuple[str, ...]) -> JsonFields:
    return JsonFields(data, "body", allowed)


def rejected_field(call: Any, *args: Any) -> str:
    with pytest.raises(RequestRejected) as rejected:
        call(*args)
    assert rejected.value.failure.code.name == "INVALID_ARGUMENT"
    field: str = rejected.value.failure.metadata["field"]
    return field


def test_fields_read_with_exact_types() -> None:
    body = fields(
        {"s": "x", "i": 5, "b": True, "t": 1.5, "n": None, "v_base64": "AAE="},
        ("s", "i", "b", "t", "n", "v", "v_base64"),
    )
    assert (body.string("s"), body.integer("i"), body.boolean("b"), body.seconds("t")) == ("x", 5, True, 1.5)
    assert (body.string("n"), body.integer("n"), body.boolean("n"), body.seconds("n"), body.value("n")) == (
        "",
        None,
        None,
        None,
        None,
    )
    assert body.value("v") == b"\x00\x01"
    assert fields({"v": "héllo"}, ("v",)).value("v") == "héllo".encode()


def test_an_integer_may_be_written_with_a_zero_fraction() -> None:
    """JSON Schema's (and proto3 JSON's) integer: 575.0 and 5e2 are integers."""
    body = fields({"a": 575.0, "b": 5e2, "c": -0.0}, ("a", "b", "c"))
    assert (body.integer("a"), body.integer("b"), body.integer("c")) == (575, 500, 0)
    assert isinstance(body.integer("a"), int)


@pytest.mark.parametrize(
    ("data", "read", "field"),
    [
        ({"x": 1}, lambda b: b.string("x"), "body.x"),
        ({"x": "1"}, lambda b: b.integer("x"), "body.x"),
        ({"x": True}, lambda b: b.integer("x"), "body.x"),
        ({"x": 2**63}, lambda b: b.integer("x"), "body.x"),
        ({"x": 1.5}, lambda b: b.integer("x"), "body.x"),
        ({"x": 2.0**63}, lambda b: b.integer("x"), "body.x"),
        ({"x": float("inf")}, lambda b: b.integer("x"), "body.x"),
        ({"x": float("nan")}, lambda b: b.integer("x"), "body.x"),
        ({"x": 1}, lambda b: b.boolean("x"), "body.x"),
        ({"x": -1}, lambda b: b.seconds("x"), "body.x"),
        ({"x": float("nan")}, lambda b: b.seconds("x"), "body.x"),
        ({"x": "\ud800"}, lambda b: b.string("x"), "body.x"),
        ({"x_base64": "***"}, lambda b: b.value("x"), "body.x_base64"),
        ({"x_base64": 5}, lambda b: b.value("x"), "body.x_base64"),
        ({"x": "a", "x_base64": "YQ=="}, lambda b: b.value("x"), "body.x"),
        ({"x": []}, lambda b: b.object("x", ()), "body.x"),
        ({"x": {}}, lambda b: b.objects("x", ()), "body.x"),
        ({"x": [1]}, lambda b: b.objects("x", ()), "body.x[0]"),
    ],
)
def test_wrong_types_are_400_naming_the_field(data: dict[str, Any], read: Any, field: str) -> None:
    body = fields(data, ("x", "x_base64"))
    assert rejected_field(read, body) == field


def test_unknown_fields_are_refused() -> None:
    assert (
        rejected_field(fields, {"expected_verison": 1}, json_requests.CAS_FIELDS) == "body.expected_verison"
    )


def test_compare_and_set_request_sets_exactly_the_given_expectation() -> None:
    def cas(data: dict[str, Any]) -> resource_pb2.CompareAndSetRequest:
        return json_requests.compare_and_set_request("k", fields(data, json_requests.CAS_FIELDS))

    assert cas({"expected_version": 0, "value": "v"}).WhichOneof("expected") == "expected_version"
    assert cas({"expected_value_base64": "", "value": "v"}).WhichOneof("expected") == "expected_value"
    assert cas({"expect_absent": False}).WhichOneof("expected") == "expect_absent"
    assert cas({"value": "v"}).WhichOneof("expected") is None
    full = cas(
        {
            "expected_etag": '"1.1"',
            "value_base64": "AA==",
            "content_type": "text/plain",
            "fence": {"lock_name": "l", "token": 4},
            "lease_id": "abc",
            "request_id": "r",
        }
    )
    assert full == resource_pb2.CompareAndSetRequest(
        key="k",
        expected_etag='"1.1"',
        value=b"\x00",
        content_type="text/plain",
        fence=lock_pb2.Fence(lock_name="l", token=4),
        lease_id="abc",
        request_id="r",
    )
    assert rejected_field(cas, {"expected_version": 1, "expected_value": "x"}) == "body.expected_value"


def test_transact_request() -> None:
    data = {
        "compares": [{"key": "a", "absent": True}, {"key": "b", "value": "x"}],
        "operations": [{"put": {"key": "a", "value": "1"}}, {"delete": {"key": "b"}}, {}],
        "request_id": "t",
    }
    request = json_requests.transact_request(fields(data, json_requests.TRANSACT_FIELDS))
    assert request == resource_pb2.TransactRequest(
        compares=[resource_pb2.Compare(key="a", absent=True), resource_pb2.Compare(key="b", value=b"x")],
        operations=[
            resource_pb2.Operation(put=resource_pb2.PutOperation(key="a", value=b"1")),
            resource_pb2.Operation(delete=resource_pb2.DeleteOperation(key="b")),
            resource_pb2.Operation(),
        ],
        request_id="t",
    )
    two = {"compares": [{"key": "a", "version": 1, "etag": "e"}]}
    assert rejected_field(json_requests.transact_request, fields(two, json_requests.TRANSACT_FIELDS)) == (
        "body.compares[0].etag"
    )
    typo = {"operations": [{"put": {"kye": "a"}}]}
    assert rejected_field(json_requests.transact_request, fields(typo, json_requests.TRANSACT_FIELDS)) == (
        "body.operations[0].put.kye"
    )


def test_acquire_request_with_durations() -> None:
    data = {
        "ttl_seconds": 30,
        "holder": "h",
        "wait_timeout_seconds": 1.25,
        "lock_delay_seconds": 0,
        "request_id": "r",
    }
    request = json_requests.acquire_request("jobs/a", fields(data, json_requests.ACQUIRE_FIELDS))
    assert (request.name, request.ttl_seconds, request.holder, request.request_id) == ("jobs/a", 30, "h", "r")
    assert request.wait_timeout.ToNanoseconds() == 1_250_000_000
    assert request.HasField("lock_delay") and request.lock_delay.ToNanoseconds() == 0
    bare = json_requests.acquire_request("l", fields({}, json_requests.ACQUIRE_FIELDS))
    assert bare.WhichOneof("lease") is None
    assert not bare.HasField("wait_timeout")
