"""What went wrong, in one shape: a decoded gRPC failure, or a request the adapter refused.

A failure from lockservice carries a `google.rpc.Status` in the `grpc-status-details-bin`
trailer: a `google.rpc.ErrorInfo` (reason, domain, metadata) and, for conflicts, a
`lockservice.v1.ConflictDetail`. A failure made by the transport (connection refused, deadline,
a proxy) carries none, and its text may name internal addresses: such messages are not trusted
for clients, and the problem body gives a generic detail instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
from lockservice_client import LockserviceError as ClientError

from lockservice.rpc.status import decode_status
from lockservice.v1 import errors_pb2

__all__ = [
    "ADAPTER_DOMAIN_REASONS",
    "Failure",
    "RequestRejected",
    "body_too_large",
    "failure_from_client_error",
    "failure_from_rpc_error",
    "invalid_argument",
    "method_not_allowed",
    "precondition_required",
    "route_not_found",
    "unsupported_media_type",
]

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


def failure_from_rpc_error(error: grpc.RpcError) -> Failure:
    """Decodes code, ErrorInfo and ConflictDetail from a failed call (sync or grpc.aio),
    with `lockservice.rpc.status.decode_status`; a failure not made by lockservice is untrusted."""
    status = decode_status(error)
    ours = status.ours
    return Failure(
        code=status.code,
        reason=status.reason if ours else "",
        message=status.message if ours else "",
        metadata=status.metadata if ours else {},
        conflict=status.conflict if ours else None,
        trusted=ours,
    )


def failure_from_client_error(error: ClientError) -> Failure:
    """Decodes an error raised by the Python client (`lockservice_client`), which raises it
    `from` the failed call: that call's status is decoded whole (conflict included). An error
    made without one keeps its code, reason, message and metadata, trusted if it has a reason."""
    if isinstance(error.__cause__, grpc.RpcError):
        return failure_from_rpc_error(error.__cause__)
    ours = bool(error.reason)
    return Failure(
        code=error.code,
        reason=error.reason,
        message=error.message if ours else "",
        metadata=dict(error.metadata) if ours else {},
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
