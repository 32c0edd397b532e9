"""Typed exceptions for every failure the server reports, decoded from the rich gRPC status.

Every server error carries a `google.rpc.ErrorInfo` (domain "lockservice", `reason` naming a
`lockservice.v1.ErrorReason`) and, for conflicts, a `lockservice.v1.ConflictDetail` with the
current state. `error_from_rpc` turns a failed call into the exception class for its reason (or,
for failures that never reached the server, such as a broken connection or a passed deadline, the
class for its status code), with the detail decoded into a `Conflict`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import ClassVar, Protocol, cast

import grpc
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lockservice_client._proto import errors_pb2

__all__ = [
    "AlreadyExists",
    "Conflict",
    "ConflictError",
    "DeadlineExceeded",
    "FeatureNotImplemented",
    "InternalError",
    "InvalidArgument",
    "InvalidKey",
    "InvalidPageToken",
    "InvalidRequestId",
    "InvalidTtl",
    "LeaseNotFound",
    "LimitExceeded",
    "LockHeld",
    "LockLost",
    "LockNotFound",
    "LockNotHeld",
    "LockserviceError",
    "NotFound",
    "PermissionDenied",
    "RequestIdReused",
    "ResourceNotFound",
    "RevisionCompacted",
    "ShuttingDown",
    "StaleFence",
    "StatedConflict",
    "StoreUnavailable",
    "TransactionConflict",
    "Unauthenticated",
    "Unavailable",
    "ValueConflict",
    "ValueTooLarge",
    "VersionConflict",
    "VersionNotFound",
    "error_from_rpc",
]

DOMAIN = "lockservice"


@dataclass(frozen=True)
class Conflict:
    """The current state of whatever a request conflicted with (`lockservice.v1.ConflictDetail`).

    Version fields are 0 / empty / None when `exists` is false; lock fields are set for lock
    conflicts only. When `state_withheld` (the caller has no read right on the key or lock),
    only `key`, `expected` and `compare_index` are set.
    """

    key: str
    exists: bool
    current_version: int
    current_etag: str
    current_update_time: datetime.datetime | None
    current_mod_revision: int
    expected: str
    compare_index: int
    holder: str
    current_token: int
    expire_time: datetime.datetime | None
    lease_id: str
    revision: int
    # The current value when the resource exists and it is at most 4 KiB; None otherwise.
    current_value: bytes | None = None
    current_content_type: str = ""
    state_withheld: bool = False

    @classmethod
    def withheld(cls, key: str) -> Conflict:
        """The state of `key` not given (a conflict that came without its detail)."""
        return cls(
            key=key,
            exists=False,
            current_version=0,
            current_etag="",
            current_update_time=None,
            current_mod_revision=0,
            expected="",
            compare_index=0,
            holder="",
            current_token=0,
            expire_time=None,
            lease_id="",
            revision=0,
            state_withheld=True,
        )


class LockserviceError(Exception):
    """A failed call: the gRPC `code`, the ErrorInfo `reason` ("" when the server sent none),
    the server's message, the ErrorInfo `metadata`, and the decoded `conflict` if any."""

    reason_name: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        conflict: Conflict | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = dict(metadata or {})
        self._conflict = conflict

    @property
    def conflict(self) -> Conflict | None:
        """The current state this call conflicted with; None for errors that are not conflicts."""
        return self._conflict

    def __str__(self) -> str:
        label = self.reason or self.code.name
        return f"{label}: {self.message}" if self.message else label


# Conflicts with the current state: re-read (the conflict says what it is now) and retry.
class ConflictError(LockserviceError):
    """ABORTED or ALREADY_EXISTS: `conflict` describes the current state (None only when the
    failure came without lockservice's reason, e.g. from a proxy)."""


class StatedConflict(ConflictError):
    """A conflict whose reason comes with the current state: `conflict` is never None. (When
    the caller may not read the key or lock, `conflict.state_withheld` is true and only `key`,
    `expected` and `compare_index` are set.)"""

    @property
    def conflict(self) -> Conflict:
        if self._conflict is None:  # never from lockservice; say so rather than give None
            self._conflict = Conflict.withheld(self.metadata.get("key", ""))
        return self._conflict


class AlreadyExists(StatedConflict):
    reason_name = "RESOURCE_EXISTS"


class VersionConflict(StatedConflict):
    reason_name = "VERSION_MISMATCH"


class ValueConflict(StatedConflict):
    reason_name = "VALUE_MISMATCH"


class TransactionConflict(StatedConflict):
    reason_name = "TRANSACTION_CONFLICT"


class LockHeld(StatedConflict):
    reason_name = "LOCK_HELD"


class LockNotHeld(StatedConflict):
    reason_name = "LOCK_NOT_HELD"


class StaleFence(StatedConflict):
    reason_name = "STALE_FENCE"


class NotFound(LockserviceError):
    """NOT_FOUND."""


class ResourceNotFound(NotFound):
    reason_name = "RESOURCE_NOT_FOUND"


class VersionNotFound(NotFound):
    reason_name = "VERSION_NOT_FOUND"


class LeaseNotFound(NotFound):
    reason_name = "LEASE_NOT_FOUND"


class LockNotFound(NotFound):
    reason_name = "LOCK_NOT_FOUND"


class InvalidArgument(LockserviceError):
    """INVALID_ARGUMENT: the request is wrong; retrying it cannot help."""

    reason_name = "INVALID_ARGUMENT"


class InvalidKey(InvalidArgument):
    reason_name = "INVALID_KEY"


class ValueTooLarge(InvalidArgument):
    reason_name = "VALUE_TOO_LARGE"


class InvalidTtl(InvalidArgument):
    reason_name = "INVALID_TTL"


class RequestIdReused(InvalidArgument):
    reason_name = "REQUEST_ID_REUSED"


class InvalidRequestId(InvalidArgument):
    reason_name = "INVALID_REQUEST_ID"


class InvalidPageToken(InvalidArgument):
    reason_name = "INVALID_PAGE_TOKEN"


class RevisionCompacted(LockserviceError):
    reason_name = "REVISION_COMPACTED"


class Unauthenticated(LockserviceError):
    reason_name = "UNAUTHENTICATED"


class PermissionDenied(LockserviceError):
    reason_name = "PERMISSION_DENIED"


class LimitExceeded(LockserviceError):
    reason_name = "LIMIT_EXCEEDED"


class Unavailable(LockserviceError):
    """UNAVAILABLE after the channel's own retries: safe to retry with the same request_id."""


class StoreUnavailable(Unavailable):
    reason_name = "STORE_UNAVAILABLE"


class ShuttingDown(Unavailable):
    reason_name = "SHUTTING_DOWN"


class DeadlineExceeded(LockserviceError):
    """DEADLINE_EXCEEDED: the call's deadline passed; a write may or may not have happened."""


class FeatureNotImplemented(LockserviceError):
    reason_name = "NOT_IMPLEMENTED"


class InternalError(LockserviceError):
    reason_name = "INTERNAL_ERROR"


class LockLost(Exception):
    """The lease behind a held lock ended (expired, revoked, or could not be kept alive) while the
    lock was in use: another holder may have it now, and writes fenced with `token` are refused."""

    def __init__(self, name: str, token: int, cause: BaseException | None = None) -> None:
        because = f": {cause}" if cause is not None else ""
        super().__init__(f"lock {name} (token {token}) was lost{because}")
        self.name = name
        self.token = token
        self.cause = cause


def _leaf_classes() -> dict[str, type[LockserviceError]]:
    pending: list[type[LockserviceError]] = [LockserviceError]
    by_reason: dict[str, type[LockserviceError]] = {}
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.reason_name:
            by_reason[cls.reason_name] = cls
    return by_reason


CLASS_BY_REASON: dict[str, type[LockserviceError]] = _leaf_classes()
CLASS_BY_CODE: dict[grpc.StatusCode, type[LockserviceError]] = {
    grpc.StatusCode.ALREADY_EXISTS: ConflictError,
    grpc.StatusCode.ABORTED: ConflictError,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: RevisionCompacted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: LimitExceeded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: FeatureNotImplemented,
}


def _time(stamp: timestamp_pb2.Timestamp, present: bool) -> datetime.datetime | None:
    return stamp.ToDatetime(tzinfo=datetime.UTC) if present else None


def conflict_from_detail(detail: errors_pb2.ConflictDetail) -> Conflict:
    return Conflict(
        key=detail.key,
        exists=detail.exists,
        current_version=detail.current_version,
        current_etag=detail.current_etag,
        current_update_time=_time(detail.current_update_time, detail.HasField("current_update_time")),
        current_mod_revision=detail.current_mod_revision,
        expected=detail.expected,
        compare_index=detail.compare_index,
        holder=detail.holder,
        current_token=detail.current_token,
        expire_time=_time(detail.expire_time, detail.HasField("expire_time")),
        lease_id=detail.lease_id,
        revision=detail.revision,
        current_value=detail.current_value if detail.HasField("current_value") else None,
        current_content_type=detail.current_content_type,
        state_withheld=detail.state_withheld,
    )


class _FailedCall(Protocol):
    """What both `grpc.RpcError` flavours (sync calls and `grpc.aio.AioRpcError`) provide."""

    def code(self) -> grpc.StatusCode: ...

    def details(self) -> str | None: ...


def _status_of(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, list[any_pb2.Any]]:
    failed = cast(_FailedCall, error)
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a status whose code or message disagrees with the trailers
        status = None
    if status is None:
        return failed.code(), failed.details() or "", []
    return failed.code(), str(status.message), list(status.details)


def error_from_rpc(error: grpc.RpcError) -> LockserviceError:
    """The typed exception for a failed call (sync or asyncio)."""
    code, message, details = _status_of(error)
    info = error_details_pb2.ErrorInfo()
    conflict: Conflict | None = None
    for detail in details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(errors_pb2.ConflictDetail.DESCRIPTOR):
            decoded = errors_pb2.ConflictDetail()
            detail.Unpack(decoded)
            conflict = conflict_from_detail(decoded)
    reason = info.reason if info.domain == DOMAIN else ""
    cls = CLASS_BY_REASON.get(reason) or CLASS_BY_CODE.get(code, LockserviceError)
    return cls(message, code=code, reason=reason, metadata=dict(info.metadata), conflict=conflict)
