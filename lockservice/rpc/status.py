"""The status codec: a domain error <-> the `google.rpc.Status` a failed call carries in its
`grpc-status-details-bin` trailer (an `ErrorInfo` with the reason, domain and metadata, and for
conflicts a `lockservice.v1.ConflictDetail` with the current state), both directions here.

Encode (the server, `lockservice.rpc.calls`): the one mapping from domain errors to gRPC codes
(`GRPC_CODE_BY_ERROR`) and statuses, bounded to what trailers carry (`to_grpc_status`), and what
a conflict reports of the current state (`conflict_detail`, `set_current_state`).
Decode (the HTTP adapter, `lockservice.http.failures`): `decode_status` reads a failed call
back. The Python client (`clients/python`) decodes the same shape with its own generated code,
as it installs without the server package.

Light on purpose: gRPC and protobuf, nothing of the server, so an adapter can import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from lockservice import errors
from lockservice.model import CONFLICT_VALUE_MAX_BYTES, ConflictState
from lockservice.v1 import errors_pb2

__all__ = [
    "DETAILS_TRAILER",
    "DOMAIN",
    "GRPC_CODE_BY_ERROR",
    "RETRY_PUSHBACK_METADATA",
    "STATUS_BUDGET_BYTES",
    "DecodedStatus",
    "conflict_detail",
    "decode_status",
    "grpc_code_for",
    "internal_status",
    "set_current_state",
    "to_grpc_status",
    "without_retry",
]

# ErrorInfo.domain of every error lockservice (server or adapter) gives.
DOMAIN = "lockservice"
DETAILS_TRAILER = "grpc-status-details-bin"
# gRFC A6: a negative value tells a client's retry policy not to retry this answer.
RETRY_PUSHBACK_METADATA = "grpc-retry-pushback-ms"

# The status travels in the trailers, which gRPC clients refuse above 8 KiB (a soft limit: past
# it a growing share of answers is dropped as RESOURCE_EXHAUSTED "Stream removed"). What the
# client sent is echoed, so every status is bounded, whatever the request and the configured
# limits: echoed strings are clipped, the message too, and the current value rides along only
# when the whole status fits in this budget (counted as gRPC counts it: the binary details plus
# the message as sent, percent-encoded).
STATUS_BUDGET_BYTES = 6 * 1024
# (longest echoed string in UTF-8 bytes, largest message cost, whether the current value may
# ride along): the first that fits the budget is used; the last always does (a few metadata
# entries and conflict strings of 256 bytes). With the default limits only a conflict on the
# longest keys and content types needs the second (its client re-reads the value, as it does a
# value past 4 KiB), and none the third.
_CLIPS = ((1024, 1536, True), (1024, 1536, False), (256, 512, False))

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


def _timestamp(micros: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMicroseconds(micros)
    return stamp


def set_current_state(
    detail: errors_pb2.ConflictDetail,
    *,
    version: int,
    etag: str,
    mod_revision: int,
    update_time: Timestamp,
    content_type: str,
    value: bytes,
) -> None:
    """Fills the `current_*` fields of `detail` with the state the request ran into: the value
    only up to `CONFLICT_VALUE_MAX_BYTES` (past it the client re-reads it)."""
    detail.current_version = version
    detail.current_etag = etag
    detail.current_mod_revision = mod_revision
    detail.current_update_time.CopyFrom(update_time)
    detail.current_content_type = content_type
    if len(value) <= CONFLICT_VALUE_MAX_BYTES:
        detail.current_value = value


def conflict_detail(conflict: ConflictState) -> errors_pb2.ConflictDetail:
    """The ConflictDetail of a domain conflict (unclipped: `to_grpc_status` bounds it)."""
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
        current = conflict.current
        set_current_state(
            detail,
            version=current.version,
            etag=current.etag,
            mod_revision=current.mod_revision,
            update_time=_timestamp(current.update_time_us),
            content_type=current.content_type,
            value=current.value,
        )
    if conflict.compare_index is not None:
        detail.compare_index = conflict.compare_index
    if conflict.expire_time_us:
        detail.expire_time.CopyFrom(_timestamp(conflict.expire_time_us))
    return detail


def _clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes at a character boundary, ending in an ellipsis."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "\u2026"


def _message_cost(text: str) -> int:
    """Trailer bytes of a message: once in the details, once percent-encoded as grpc-message."""
    data = text.encode()
    return len(data) + sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in data)


def _clip_message(message: str, limit: int) -> str:
    if _message_cost(message) <= limit:
        return message
    kept, cost = [], _message_cost("\u2026")
    for char in message:
        cost += _message_cost(char)
        if cost > limit:
            break
        kept.append(char)
    return "".join(kept) + "\u2026"


def _bounded_status(
    error: errors.LockserviceError, echo_limit: int, message_limit: int, value: bool
) -> status_pb2.Status:
    message = _clip_message(error.message, message_limit)
    metadata = {name: _clip(text, echo_limit) for name, text in error.metadata.items()}
    details = [_packed(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata))]
    if error.conflict is not None:
        conflict = conflict_detail(error.conflict)
        for name in ("key", "expected", "holder", "lease_id", "current_etag", "current_content_type"):
            setattr(conflict, name, _clip(getattr(conflict, name), echo_limit))
        if not value:
            conflict.ClearField("current_value")
        details.append(_packed(conflict))
    return status_pb2.Status(code=grpc_code_for(error).value[0], message=message, details=details)


def _trailer_cost(status: status_pb2.Status) -> int:
    details: int = status.ByteSize()  # the message is in here once already
    return details + _message_cost(status.message) - len(status.message.encode())


def to_grpc_status(error: errors.LockserviceError) -> grpc.Status:
    """The status a client sees for `error`: code, message, ErrorInfo and any ConflictDetail,
    within `STATUS_BUDGET_BYTES`."""
    for echo_limit, message_limit, value in _CLIPS:
        status = _bounded_status(error, echo_limit, message_limit, value)
        if _trailer_cost(status) <= STATUS_BUDGET_BYTES:
            break
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


# -- decode ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedStatus:
    """What a failed call said. `domain` is "" (and `reason`, `metadata` empty) when it came
    without an ErrorInfo: made by the transport or a proxy, not by lockservice. `message` is the
    rich status's, else the call's details (whose text may name internal addresses)."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    conflict: errors_pb2.ConflictDetail | None = None

    @property
    def ours(self) -> bool:
        """Whether lockservice made this status (its ErrorInfo domain)."""
        return self.domain == DOMAIN


def _rich_status(trailers: Iterable[tuple[str, Any]]) -> status_pb2.Status | None:
    for key, value in trailers:
        if key == DETAILS_TRAILER and isinstance(value, bytes):
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


def decode_status(error: grpc.RpcError) -> DecodedStatus:
    """Decodes code, ErrorInfo and ConflictDetail from a failed call (sync or grpc.aio); a
    trailer that does not parse counts as none."""
    code, details, trailers = _code_details_trailers(error)
    status = _rich_status(trailers)
    if status is None:
        return DecodedStatus(code, details)
    info = error_details_pb2.ErrorInfo()
    conflict: errors_pb2.ConflictDetail | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(errors_pb2.ConflictDetail.DESCRIPTOR):
            conflict = errors_pb2.ConflictDetail()
            detail.Unpack(conflict)
    return DecodedStatus(code, status.message, info.reason, info.domain, dict(info.metadata), conflict)
