"""What went wrong, in one shape: a decoded gRPC failure, or a request the adapter refused.

A failure from lockservice carries a `google.rpc.Status` in the `grpc-status-details-bin`
trailer: a `google.rpc.ErrorInfo` (reason, domain, metadata) and, for conflicts, a
`lockservice.v1.ConflictDetail`. A failure made by the transport (connection refused, deadline,
a proxy) carries none, and its text may name internal addresses: such messages are not trusted
for clients, and the problem body gives a generic detail instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from lockservice.v1 import errors_pb2

__all__ = [
    "ADAPTER_DOMAIN_REASONS",
    "DOMAIN",
    "Failure",
    "RequestRejected",
    "body_too_large",
    "failure_from_rpc_error",
    "invalid_argument",
    "method_not_allowed",
    "precondition_required",
    "route_not_found",
    "unsupported_media_type",
]

DOMAIN = "lockservice"
_DETAILS_TRAILER = "grpc-status-details-bin"

# Reasons only the HTTP adapter gives: failures HTTP has a status for and gRPC has not.
PRECONDITION_REQUIRED = "PRECONDITION_REQUIRED"
BODY_TOO_LARGE = "BODY_TOO_LARGE"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND"
ADAPTER_DOMAIN_REASONS = (
    PRECONDITION_REQUIRED,
    BODY_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    METHOD_NOT_ALLOWED,
    ROUTE_NOT_FOUND,
)


@dataclass(frozen=True)
class Failure:
    """A failed call (or a refused request) as the translator sees it.

    `reason` is an `ErrorReason` name, one of `ADAPTER_DOMAIN_REASONS`, or "" when the failure
    came without our ErrorInfo (then `trusted` is False and `message` is not shown).
    """

    code: grpc.StatusCode
    reason: str
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    conflict: errors_pb2.ConflictDetail | None = None
    trusted: bool = True


class RequestRejected(Exception):
    """The adapter refused a request before (or instead of) calling the service."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _rich_status(trailers: Iterable[tuple[str, Any]]) -> status_pb2.Status | None:
    for key, value in trailers:
        if key == _DETAILS_TRAILER and isinstance(value, bytes):
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except DecodeError:
                return None
            return status
    return None


def _code_details_trailers(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, Iterable[tuple[str, Any]]]:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code(), error.details() or "", tuple(error.trailing_metadata() or ())
    if isinstance(error, grpc.Call):  # a synchronous stub's error is also its Call
        return error.code(), error.details() or "", tuple(error.trailing_metadata() or ())
    return grpc.StatusCode.UNKNOWN, "", ()


def failure_from_rpc_error(error: grpc.RpcError) -> Failure:
    """Decodes code, ErrorInfo and ConflictDetail from a failed call (sync or grpc.aio)."""
    code, details, trailers = _code_details_trailers(error)
    status = _rich_status(trailers)
    info = error_details_pb2.ErrorInfo()
    conflict: errors_pb2.ConflictDetail | None = None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(errors_pb2.ConflictDetail.DESCRIPTOR):
            conflict = errors_pb2.ConflictDetail()
            detail.Unpack(conflict)
    ours = info.domain == DOMAIN
    return Failure(
        code=code,
        reason=info.reason if ours else "",
        message=(status.message if status is not None else details) if ours else "",
        metadata=dict(info.metadata) if ours else {},
        conflict=conflict if ours else None,
        trusted=ours,
    )


def invalid_argument(field_name: str, message: str) -> RequestRejected:
    """A malformed body, header, query parameter or path: 400, naming the field."""
    return RequestRejected(
        Failure(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", message, {"field": field_name})
    )


def precondition_required(method: str) -> RequestRejected:
    return RequestRejected(
        Failure(
            grpc.StatusCode.FAILED_PRECONDITION,
            PRECONDITION_REQUIRED,
            f"this server requires a conditional {method}: send If-Match (or If-None-Match: * to create)",
        )
    )


def body_too_large(limit: int) -> RequestRejected:
    return RequestRejected(
        Failure(
            grpc.StatusCode.INVALID_ARGUMENT,
            BODY_TOO_LARGE,
            f"the request body is larger than {limit} bytes",
            {"limit_bytes": str(limit)},
        )
    )


def unsupported_media_type(given: str) -> RequestRejected:
    return RequestRejected(
        Failure(
            grpc.StatusCode.INVALID_ARGUMENT,
            UNSUPPORTED_MEDIA_TYPE,
            f"the body must be application/json, not {given or 'untyped'}",
            {"field": "Content-Type"},
        )
    )


def method_not_allowed(method: str, allow: str) -> RequestRejected:
    return RequestRejected(
        Failure(
            grpc.StatusCode.UNIMPLEMENTED,
            METHOD_NOT_ALLOWED,
            f"{method} is not allowed here; allowed: {allow}",
            {"allow": allow},
        )
    )


def route_not_found(path: str) -> RequestRejected:
    return RequestRejected(
        Failure(grpc.StatusCode.NOT_FOUND, ROUTE_NOT_FOUND, f"no route matches {path}; see /v1/openapi.json")
    )
