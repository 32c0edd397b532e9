"""One frozen request dataclass per call into the core, independent of the wire format.

`owner` is the caller's authenticated identity (None when authentication is off): it owns the
leases the call grants, and must own the leases the call names (`lockservice.core.ownership`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lockservice.model import Compare, Expectation, Fence, Operation

__all__ = [
    "AcquireLock",
    "CompareAndSet",
    "CreateResource",
    "DeleteResource",
    "GetResource",
    "GrantLease",
    "ListLeases",
    "ListLocks",
    "ListResourceVersions",
    "ListResources",
    "RefreshLease",
    "ReleaseLock",
    "RevokeLease",
    "Transact",
    "UpdateResource",
    "Watch",
]


@dataclass(frozen=True, slots=True)
class CreateResource:
    key: str
    value: bytes
    content_type: str = ""
    lease_id: str = ""
    request_id: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class GetResource:
    key: str
    version: int = 0


@dataclass(frozen=True, slots=True)
class UpdateResource:
    key: str
    value: bytes
    content_type: str = ""
    expected_version: int | None = None
    expected_etag: str = ""
    allow_missing: bool = False
    fence: Fence | None = None
    lease_id: str = ""
    request_id: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteResource:
    key: str
    expected_version: int | None = None
    expected_etag: str = ""
    allow_missing: bool = False
    fence: Fence | None = None
    request_id: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class ListResources:
    prefix: str = ""
    page_size: int = 0
    page_token: str = ""
    with_values: bool = False


@dataclass(frozen=True, slots=True)
class ListResourceVersions:
    key: str
    page_size: int = 0
    page_token: str = ""
    with_values: bool = False


@dataclass(frozen=True, slots=True)
class CompareAndSet:
    key: str
    expectation: Expectation | None
    value: bytes
    content_type: str = ""
    fence: Fence | None = None
    lease_id: str = ""
    request_id: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Transact:
    compares: tuple[Compare, ...]
    operations: tuple[Operation, ...]
    fence: Fence | None = None
    request_id: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class GrantLease:
    ttl_seconds: int
    holder: str = ""
    request_id: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class RefreshLease:
    lease_id: str
    request_id: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class RevokeLease:
    lease_id: str
    request_id: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class AcquireLock:
    """Exactly one of `lease_id` and `ttl_seconds` (a lease created for the caller)."""

    name: str
    lease_id: str = ""
    ttl_seconds: int = 0
    holder: str = ""
    wait_timeout_seconds: float = 0.0
    lock_delay_seconds: float | None = None
    request_id: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class ReleaseLock:
    name: str
    token: int
    request_id: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class ListLocks:
    prefix: str = ""
    page_size: int = 0
    page_token: str = ""
    include_queue: bool = False


@dataclass(frozen=True, slots=True)
class ListLeases:
    holder: str = ""
    page_size: int = 0
    page_token: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Watch:
    key: str
    prefix: bool = False
    start_revision: int = 0
