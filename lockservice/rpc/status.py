"""The one mapping from domain errors to gRPC status codes and rich `google.rpc.Status` details."""

from __future__ import annotations

from typing import Any, NamedTuple

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from lockservice import errors
from lockservice.model import CONFLICT_VALUE_MAX_BYTES, ConflictState
from lockservice.rpc.convert import timestamp
from lockservice.v1 import errors_pb2

__all__ = [
    "DOMAIN",
    "GRPC_CODE_BY_ERROR",
    "RETRY_PUSHBACK_METADATA",
    "grpc_code_for",
    "internal_status",
    "to_grpc_status",
    "without_retry",
]

DOMAIN = "lockservice"
# gRFC A6: a negative value tells a client's retry policy not to retry this answer.
RETRY_PUSHBACK_METADATA = "grpc-retry-pushback-ms"

GRPC_CODE_BY_ERROR: dict[type[errors.LockserviceError], grpc.StatusCode] = {
    errors.ResourceExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.VersionMismatch: grpc.StatusCode.ABORTED,
    errors.ValueMismatch: grpc.StatusCode.ABORTED,
    errors.TransactionConflict: grpc.StatusCode.ABORTED,
    errors.LockHeld: grpc.StatusCode.ABORTED,
    errors.LockNotHeld: grpc.StatusCode.ABORTED,
    errors.StaleFence: grpc.StatusCode.ABORTED,
    errors.ResourceNotFound: grpc.StatusCode.NOT_FOUND,
    errors.VersionNotFound: grpc.StatusCode.NOT_FOUND,
    errors.LeaseNotFound: grpc.StatusCode.NOT_FOUND,
    errors.LockNotFound: grpc.StatusCode.NOT_FOUND,
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidKey: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ValueTooLarge: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidTtl: grpc.StatusCode.INVALID_ARGUMENT,
    errors.RequestIdReused: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidRequestId: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidPageToken: grpc.StatusCode.INVALID_ARGUMENT,
    errors.RevisionCompacted: grpc.StatusCode.OUT_OF_RANGE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.LimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    errors.FeatureNotImplemented: grpc.StatusCode.UNIMPLEMENTED,
}


def grpc_code_for(error: errors.LockserviceError) -> grpc.StatusCode:
    return GRPC_CODE_BY_ERROR[type(error)]


def _packed(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _conflict_detail(conflict: ConflictState) -> errors_pb2.ConflictDetail:
    detail = errors_pb2.ConflictDetail(
        key=conflict.key,
        exists=conflict.current is not None,
        expected=conflict.expected,
        revision=conflict.revision,
        holder=conflict.holder,
        current_token=conflict.token,
        lease_id=conflict.lease_id,
        state_withheld=conflict.withheld,
    )
    if conflict.current is not None:
        detail.current_version = conflict.current.version
        detail.current_etag = conflict.current.etag
        detail.current_mod_revision = conflict.current.mod_revision
        detail.current_update_time.CopyFrom(timestamp(conflict.current.update_time_us))
        detail.current_content_type = conflict.current.content_type
        if len(conflict.current.value) <= CONFLICT_VALUE_MAX_BYTES:
            detail.current_value = conflict.current.value
    if conflict.compare_index is not None:
        detail.compare_index = conflict.compare_index
    if conflict.expire_time_us:
        detail.expire_time.CopyFrom(timestamp(conflict.expire_time_us))
    return detail


def to_grpc_status(error: errors.LockserviceError) -> grpc.Status:
    """The status a client sees for `error`: code, message, ErrorInfo and any ConflictDetail."""
    code = grpc_code_for(error)
    details = [
        _packed(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata))
    ]
    if error.conflict is not None:
        details.append(_packed(_conflict_detail(error.conflict)))
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    result: grpc.Status = rpc_status.to_status(status)
    return result


class _Status(NamedTuple):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


class _Answer(_Status, grpc.Status):
    """A grpc.Status of our own making (grpc.Status is an interface with no constructor)."""


def without_retry(status: grpc.Status) -> grpc.Status:
    """`status` telling the client's retry policy not to retry (pushback -1): for an UNAVAILABLE
    answered so close to the caller's deadline that another attempt could only end in
    DEADLINE_EXCEEDED, hiding the real cause from the caller."""
    fields: Any = status
    metadata = (*fields.trailing_metadata, (RETRY_PUSHBACK_METADATA, "-1"))
    return _Answer(fields.code, fields.details, metadata)


def internal_status() -> grpc.Status:
    """What a client sees for an unexpected fault: a generic message, never the exception text."""
    info = error_details_pb2.ErrorInfo(reason="INTERNAL_ERROR", domain=DOMAIN)
    status = status_pb2.Status(
        code=code_pb2.INTERNAL,
        message="internal error; the server logged the cause",
        details=[_packed(info)],
    )
    result: grpc.Status = rpc_status.to_status(status)
    return result
