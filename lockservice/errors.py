"""Every domain failure, one class each, with a `reason` equal to a `lockservice.v1.ErrorReason`.

The gRPC layer maps each class to a status code in one table (`lockservice.rpc.status`); the
HTTP adapter maps codes to HTTP statuses in one table. Messages are safe to show to clients:
they never contain values or secrets.
"""

from __future__ import annotations

from typing import ClassVar

from lockservice.model import ConflictState

__all__ = [
    "FeatureNotImplemented",
    "InvalidArgument",
    "InvalidKey",
    "InvalidPageToken",
    "InvalidRequestId",
    "InvalidTtl",
    "LeaseNotFound",
    "LimitExceeded",
    "LockHeld",
    "LockNotFound",
    "LockNotHeld",
    "LockserviceError",
    "PermissionDenied",
    "RequestIdReused",
    "ResourceExists",
    "ResourceNotFound",
    "RevisionCompacted",
    "ShuttingDown",
    "StaleFence",
    "StoreUnavailable",
    "TransactionConflict",
    "Unauthenticated",
    "ValueMismatch",
    "ValueTooLarge",
    "VersionMismatch",
    "VersionNotFound",
    "all_error_classes",
]


class LockserviceError(Exception):
    """Base of every domain error. `metadata` values are short strings (AIP-193 ErrorInfo)."""

    reason: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        metadata: dict[str, str] | None = None,
        conflict: ConflictState | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata or {})
        self.conflict = conflict


# Conflicts with the current state: the client should re-read and retry.
class ResourceExists(LockserviceError):
    reason = "RESOURCE_EXISTS"


class VersionMismatch(LockserviceError):
    reason = "VERSION_MISMATCH"


class ValueMismatch(LockserviceError):
    reason = "VALUE_MISMATCH"


class TransactionConflict(LockserviceError):
    reason = "TRANSACTION_CONFLICT"


class LockHeld(LockserviceError):
    reason = "LOCK_HELD"


class LockNotHeld(LockserviceError):
    reason = "LOCK_NOT_HELD"


class StaleFence(LockserviceError):
    reason = "STALE_FENCE"


# Missing things.
class ResourceNotFound(LockserviceError):
    reason = "RESOURCE_NOT_FOUND"


class VersionNotFound(LockserviceError):
    reason = "VERSION_NOT_FOUND"


class LeaseNotFound(LockserviceError):
    reason = "LEASE_NOT_FOUND"


class LockNotFound(LockserviceError):
    reason = "LOCK_NOT_FOUND"


# The client's mistakes.
class InvalidArgument(LockserviceError):
    """A malformed field; metadata["field"] names it."""

    reason = "INVALID_ARGUMENT"


class InvalidKey(InvalidArgument):
    reason = "INVALID_KEY"


class ValueTooLarge(InvalidArgument):
    reason = "VALUE_TOO_LARGE"


class InvalidTtl(InvalidArgument):
    reason = "INVALID_TTL"


class RequestIdReused(InvalidArgument):
    reason = "REQUEST_ID_REUSED"


class InvalidRequestId(InvalidArgument):
    reason = "INVALID_REQUEST_ID"


class InvalidPageToken(InvalidArgument):
    reason = "INVALID_PAGE_TOKEN"


class RevisionCompacted(LockserviceError):
    reason = "REVISION_COMPACTED"


# Who may do what.
class Unauthenticated(LockserviceError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(LockserviceError):
    reason = "PERMISSION_DENIED"


class LimitExceeded(LockserviceError):
    reason = "LIMIT_EXCEEDED"


# The server's state.
class StoreUnavailable(LockserviceError):
    reason = "STORE_UNAVAILABLE"


class ShuttingDown(LockserviceError):
    reason = "SHUTTING_DOWN"


class FeatureNotImplemented(LockserviceError):
    reason = "NOT_IMPLEMENTED"


def all_error_classes() -> list[type[LockserviceError]]:
    """Every concrete error class, for the completeness tests of the mapping tables."""
    found: list[type[LockserviceError]] = []
    pending: list[type[LockserviceError]] = [LockserviceError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found
