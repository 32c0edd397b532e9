"""Frozen dataclasses that the core and the stores speak. No gRPC, no protobuf, no SQL.

Times are integers: microseconds since the Unix epoch (UTC), named `*_us`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "RESOURCE_OVERHEAD_BYTES",
    "ChangeEvent",
    "Compare",
    "ConflictState",
    "DeleteOperation",
    "DeleteResult",
    "EventType",
    "ExpectAbsent",
    "ExpectEtag",
    "ExpectPresent",
    "ExpectValue",
    "ExpectVersion",
    "Expectation",
    "Fence",
    "Lease",
    "LeaseEnded",
    "LeaseListing",
    "LeaseView",
    "LockGranted",
    "LockListing",
    "LockState",
    "LockView",
    "LockWaiter",
    "NoticesLost",
    "Operation",
    "OperationResult",
    "Page",
    "PutOperation",
    "Resource",
    "TransactResult",
    "WaiterFailed",
    "WatchBatch",
    "etag_for",
]

DEFAULT_CONTENT_TYPE = "application/octet-stream"


# An etag as the server issues it, `"<create_revision>.<version>"`, has at most 41 characters;
# an expected etag longer than this is refused (it could never match, and is echoed back).
MAX_ETAG_CHARS = 64


def etag_for(create_revision: int, version: int) -> str:
    """A strong HTTP entity tag, unique per incarnation and version of a key.

    Clients treat it as opaque; it is derived, never stored, so it cannot drift.
    """
    return f'"{create_revision}.{version}"'


# A resource's message beyond its key and value: a content type (at most 255 characters),
# versions, revisions, times, etag.
RESOURCE_OVERHEAD_BYTES = 416


@dataclass(frozen=True, slots=True)
class Resource:
    key: str
    value: bytes
    content_type: str
    version: int
    create_revision: int
    mod_revision: int
    create_time_us: int
    update_time_us: int
    lease_id: str = ""

    @property
    def etag(self) -> str:
        return etag_for(self.create_revision, self.version)

    @property
    def footprint(self) -> int:
        """The bytes this resource costs in memory and on the wire, as the memory budget counts
        them (`lockservice.core.memory`): key and value, plus an upper bound for the rest of its
        message, so a sum of footprints bounds a reply's size. The stores compute the same from
        their rows (`lockservice.store.sql`) without reading the content type, which sits
        after the value and would cost a walk over a large value's pages."""
        return len(self.key) + len(self.value) + RESOURCE_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class Fence:
    lock_name: str
    token: int


@dataclass(frozen=True, slots=True)
class ExpectVersion:
    version: int

    def describe(self) -> str:
        return f"version {self.version}"


@dataclass(frozen=True, slots=True)
class ExpectEtag:
    etag: str

    def describe(self) -> str:
        return f"etag {self.etag}"


@dataclass(frozen=True, slots=True)
class ExpectValue:
    value: bytes

    def describe(self) -> str:
        return f"value of {len(self.value)} bytes"


@dataclass(frozen=True, slots=True)
class ExpectAbsent:
    def describe(self) -> str:
        return "absent"


@dataclass(frozen=True, slots=True)
class ExpectPresent:
    def describe(self) -> str:
        return "present"


Expectation = ExpectVersion | ExpectEtag | ExpectValue | ExpectAbsent | ExpectPresent


@dataclass(frozen=True, slots=True)
class Compare:
    key: str
    expectation: Expectation


@dataclass(frozen=True, slots=True)
class PutOperation:
    key: str
    value: bytes
    content_type: str = ""
    lease_id: str = ""


@dataclass(frozen=True, slots=True)
class DeleteOperation:
    key: str


Operation = PutOperation | DeleteOperation


@dataclass(frozen=True, slots=True)
class OperationResult:
    """For a put, the new state; for a delete, the last state before it (None when the caller
    may not read the key: `core.visibility`)."""

    resource: Resource | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class TransactResult:
    revision: int
    results: tuple[OperationResult, ...]


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """`resource` is the last state before the delete, or None when nothing was deleted."""

    resource: Resource | None
    revision: int


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[Resource, ...]
    next_page_token: str
    revision: int = 0


# The largest current value a conflict carries back to the client. The gRPC status details
# travel base64-encoded in the trailers, which gRPC refuses above 8 KiB by default.
CONFLICT_VALUE_MAX_BYTES = 4096

# The longest an AcquireLock may queue, and the longest lock-delay it may ask for: the same on
# gRPC (`Limits`), over HTTP and in the OpenAPI document.
MAX_LOCK_WAIT_SECONDS = 3600.0
MAX_LOCK_DELAY_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class ConflictState:
    """What a conflicting request ran into: enough for the client to re-fetch, merge, retry."""

    key: str
    current: Resource | None
    expected: str = ""
    compare_index: int | None = None
    revision: int = 0
    holder: str = ""
    token: int = 0
    expire_time_us: int = 0
    lease_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # The caller may not read `key`: every field of the state is blank (`core.visibility`).
    withheld: bool = False


@dataclass(frozen=True, slots=True)
class Lease:
    """A TTL a client keeps alive. `owner_lock` names the lock it was granted for, if any:
    such a lease ends with that lock's release."""

    lease_id: str
    holder: str
    ttl_seconds: int
    grant_time_us: int
    expire_time_us: int
    owner_lock: str = ""


@dataclass(frozen=True, slots=True)
class LeaseView:
    """A lease as callers see it, with what hangs on it."""

    lease: Lease
    remaining_ms: int
    lock_names: tuple[str, ...] = ()
    resource_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseEnded:
    """What ending a lease released and deleted."""

    revision: int
    released_locks: tuple[str, ...]
    deleted_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LockState:
    """A lock's row. `token` is the last fencing token issued (the holder's while `held`);
    the row outlives releases so tokens never repeat. `grant_id` names the acquisition."""

    name: str
    held: bool
    holder: str
    lease_id: str
    token: int
    acquire_time_us: int
    lock_delay_us: int
    available_time_us: int
    grant_id: str = ""


@dataclass(frozen=True, slots=True)
class LockView:
    """A lock as callers see it: its state, the holder's lease expiry and the queue length."""

    state: LockState
    expire_time_us: int
    waiters: int


@dataclass(frozen=True, slots=True)
class LockWaiter:
    """A caller queued for a lock, in `seq` order (first come, first served)."""

    waiter_id: str
    name: str
    seq: int
    holder: str
    lease_id: str
    ttl_seconds: int
    lock_delay_us: int
    request_id: str = ""
    fingerprint: str = ""
    # When the caller stops waiting: a waiter past it is skipped, even if its process died.
    deadline_us: int = 0


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"
    EXPIRE = "EXPIRE"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A committed change to a key: for PUT the new state, else the last state."""

    type: EventType
    resource: Resource
    revision: int


@dataclass(frozen=True, slots=True)
class LockListing:
    """A lock as ListLocks lists it: its view, the first of its queued callers (when asked for),
    and whether the holder's details were withheld from the caller."""

    view: LockView
    queue: tuple[LockWaiter, ...] = ()
    detail_withheld: bool = False


@dataclass(frozen=True, slots=True)
class LeaseListing:
    """A live lease as the store lists it, with the first of its held locks and resources."""

    lease: Lease
    lock_names: tuple[str, ...]
    resource_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LockGranted:
    """Published after commit: the queued `waiter_id` now holds the lock."""

    waiter_id: str
    lock: LockView


@dataclass(frozen=True, slots=True)
class NoticesLost:
    """Published when notices of other processes' commits may have been missed (PostgreSQL:
    the replica's listening connection was lost and is back): waits must be checked against
    the store, since a hand-over committed meanwhile never reached them."""


@dataclass(frozen=True, slots=True)
class WaiterFailed:
    """Published after commit: the queued `waiter_id` was dropped (its lease ended)."""

    waiter_id: str
    name: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Events for one watcher, in revision order; empty when it only reports progress."""

    events: tuple[ChangeEvent, ...]
    revision: int
