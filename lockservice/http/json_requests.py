"""JSON bodies -> protobuf requests. Only the wire shape is checked here (types, one member of
each oneof); every rule about keys, versions, TTLs and tokens is the service's."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

from lockservice.http.bodies import JsonFields
from lockservice.http.failures import invalid_argument
from lockservice.http.params import body_fence
from lockservice.model import MAX_LOCK_DELAY_SECONDS, MAX_LOCK_WAIT_SECONDS
from lockservice.v1 import lease_pb2, lock_pb2, resource_pb2

__all__ = [
    "ACQUIRE_FIELDS",
    "CAS_FIELDS",
    "GRANT_FIELDS",
    "RELEASE_FIELDS",
    "REQUEST_ID_FIELDS",
    "TRANSACT_FIELDS",
    "acquire_request",
    "compare_and_set_request",
    "grant_request",
    "release_request",
    "transact_request",
]

CAS_FIELDS = (
    "expected_version",
    "expected_etag",
    "expected_value",
    "expected_value_base64",
    "expect_absent",
    "value",
    "value_base64",
    "content_type",
    "fence",
    "lease_id",
    "request_id",
)
TRANSACT_FIELDS = ("compares", "operations", "fence", "request_id")
_COMPARE_FIELDS = ("key", "version", "etag", "value", "value_base64", "absent")
_OPERATION_FIELDS = ("put", "delete")
_PUT_FIELDS = ("key", "value", "value_base64", "content_type", "lease_id")
_DELETE_FIELDS = ("key",)
ACQUIRE_FIELDS = (
    "lease_id",
    "ttl_seconds",
    "holder",
    "wait_timeout_seconds",
    "lock_delay_seconds",
    "request_id",
)
RELEASE_FIELDS = ("token", "request_id")
GRANT_FIELDS = ("ttl_seconds", "holder", "request_id")
REQUEST_ID_FIELDS = ("request_id",)


def _one_of(body: JsonFields, names: tuple[str, ...]) -> str | None:
    """The one member of a oneof that `body` sets (None if none); 400 if several.

    A bytes member counts as set when given as text (`name`) or as base64 (`name_base64`).
    """
    given = [name for name in names if body.has(name) or body.has(f"{name}_base64")]
    if len(given) > 1:
        raise invalid_argument(f"{body.path}.{given[1]}", f"give at most one of {', '.join(names)}")
    return given[0] if given else None


def _copy_expectation(body: JsonFields, message: Message, names: tuple[str, str, str, str]) -> None:
    """Sets the one expectation `body` gives, of a oneof whose members are named
    (version, etag, value, absence) in `names`; nothing when it gives none."""
    name = _one_of(body, names)
    version, etag, value, _ = names
    if name is None:
        return
    if name == version:
        setattr(message, name, body.integer(name) or 0)
    elif name == etag:
        setattr(message, name, body.string(name))
    elif name == value:
        setattr(message, name, body.value(name) or b"")
    else:
        setattr(message, name, bool(body.boolean(name)))


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def compare_and_set_request(key: str, body: JsonFields) -> resource_pb2.CompareAndSetRequest:
    request = resource_pb2.CompareAndSetRequest(
        key=key,
        value=body.value("value") or b"",
        content_type=body.string("content_type"),
        lease_id=body.string("lease_id"),
        request_id=body.string("request_id"),
    )
    fence = body_fence(body)
    if fence is not None:
        request.fence.CopyFrom(fence)
    _copy_expectation(body, request, ("expected_version", "expected_etag", "expected_value", "expect_absent"))
    return request


def _compare(compare: JsonFields) -> resource_pb2.Compare:
    message = resource_pb2.Compare(key=compare.string("key"))
    _copy_expectation(compare, message, ("version", "etag", "value", "absent"))
    return message


def _operation(operation: JsonFields) -> resource_pb2.Operation:
    put = operation.object("put", _PUT_FIELDS)
    delete = operation.object("delete", _DELETE_FIELDS)
    if put is not None and delete is not None:
        raise invalid_argument(f"{operation.path}.delete", "an operation is a put or a delete, not both")
    if put is not None:
        return resource_pb2.Operation(
            put=resource_pb2.PutOperation(
                key=put.string("key"),
                value=put.value("value") or b"",
                content_type=put.string("content_type"),
                lease_id=put.string("lease_id"),
            )
        )
    if delete is not None:
        return resource_pb2.Operation(delete=resource_pb2.DeleteOperation(key=delete.string("key")))
    return resource_pb2.Operation()


def transact_request(body: JsonFields) -> resource_pb2.TransactRequest:
    request = resource_pb2.TransactRequest(
        compares=[_compare(c) for c in body.objects("compares", _COMPARE_FIELDS)],
        operations=[_operation(o) for o in body.objects("operations", _OPERATION_FIELDS)],
        request_id=body.string("request_id"),
    )
    fence = body_fence(body)
    if fence is not None:
        request.fence.CopyFrom(fence)
    return request


def acquire_request(name: str, body: JsonFields) -> lock_pb2.AcquireLockRequest:
    request = lock_pb2.AcquireLockRequest(
        name=name, holder=body.string("holder"), request_id=body.string("request_id")
    )
    match _one_of(body, ("lease_id", "ttl_seconds")):
        case "lease_id":
            request.lease_id = body.string("lease_id")
        case "ttl_seconds":
            request.ttl_seconds = body.integer("ttl_seconds") or 0
    wait = body.seconds("wait_timeout_seconds", MAX_LOCK_WAIT_SECONDS)
    if wait is not None:
        request.wait_timeout.CopyFrom(_duration(wait))
    delay = body.seconds("lock_delay_seconds", MAX_LOCK_DELAY_SECONDS)
    if delay is not None:
        request.lock_delay.CopyFrom(_duration(delay))
    return request


def release_request(name: str, body: JsonFields) -> lock_pb2.ReleaseLockRequest:
    return lock_pb2.ReleaseLockRequest(
        name=name, token=body.integer("token") or 0, request_id=body.string("request_id")
    )


def grant_request(body: JsonFields) -> lease_pb2.GrantLeaseRequest:
    return lease_pb2.GrantLeaseRequest(
        ttl_seconds=body.integer("ttl_seconds") or 0,
        holder=body.string("holder"),
        request_id=body.string("request_id"),
    )
