"""The storage contract. Everything above this module speaks `Store`; only stores know SQL.

An atomic write is a plain function of a transaction, `body(txn)`: it reads, compares, writes,
and raises a `LockserviceError` to abort. The store decides how to run it (SQLite: many bodies
per commit, a savepoint each; PostgreSQL: row locks and re-runs), so a body must be re-runnable
and must do nothing but talk to `txn`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from lockservice.model import ChangeEvent, Lease, LockGranted, LockState, LockWaiter, Resource, WaiterFailed

__all__ = [
    "Notice",
    "NoticeListener",
    "ReportsAvailability",
    "Store",
    "StoredAnswer",
    "WriteBody",
    "WriteTxn",
]

T = TypeVar("T")

# What a committed body tells listeners: its changes (for Watch) and lock hand-overs.
Notice = ChangeEvent | LockGranted | WaiterFailed
NoticeListener = Callable[[list[Notice]], None]


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first successful answer to a request_id, for AIP-155 idempotent retries."""

    fingerprint: str
    answer: str


class WriteTxn(Protocol):
    """What a write body may do. Every change is committed atomically with the body, or not at all."""

    @property
    def now_us(self) -> int:
        """The store's clock for this transaction (microseconds since the epoch)."""
        ...

    @property
    def token_floor(self) -> int:
        """Every fencing token the store issues is above this: 0, or what a restore set so that
        no token issued before the restore is issued again (`lockservice.store.backup`)."""
        ...

    def get(self, key: str) -> Resource | None: ...

    def put(self, resource: Resource) -> None:
        """Stores `resource` as the key's current state and as a retained version, and records
        a PUT event at this body's revision (call `next_revision` first)."""
        ...

    def delete(self, key: str, *, expired: bool = False) -> None:
        """Removes the key and its retained versions, and records a DELETE (or EXPIRE) event
        at this body's revision (call `next_revision` first)."""
        ...

    def current_revision(self) -> int:
        """The last committed store revision, or this body's revision once it has one."""
        ...

    def next_revision(self) -> int:
        """The revision of this body's change: allocated on the first call, the same after."""
        ...

    def claim_request(self, request_key: str) -> None:
        """Holds `request_key` for this body until it commits: bodies claiming one key run one
        after another, so a retry sees what its earlier attempt did (its answer or its queued
        waiter) and never does the work a second time. Claim before reading either."""
        ...

    def get_answer(self, request_key: str) -> StoredAnswer | None:
        """The answer stored for the key (`lockservice.core.idempotency.request_key`). A body that
        may save the key's answer claims it first; a body that only reads needs no claim."""
        ...

    def save_answer(self, request_key: str, fingerprint: str, answer: str) -> None:
        """Stores the one answer of a request. A key has one answer: a second is a bug, raised
        as such (never retried as a transient conflict)."""
        ...

    # -- leases -----------------------------------------------------------------------------

    def get_lease(self, lease_id: str) -> Lease | None: ...

    def put_lease(self, lease: Lease) -> None: ...

    def delete_lease(self, lease_id: str) -> None: ...

    def live_lease_count(self, now_us: int) -> int:
        """Leases whose deadline is after `now_us`."""
        ...

    def lease_rows(self) -> int:
        """Every stored lease, live or past its deadline but not yet ended: an upper bound of
        `live_lease_count` that costs no scan (a count kept as leases are stored and deleted)."""
        ...

    def expired_leases(self, now_us: int, limit: int) -> list[Lease]:
        """Leases whose deadline is at or before `now_us`, earliest first."""
        ...

    def lease_lock_names(self, lease_id: str) -> list[str]:
        """Names of the locks held under the lease."""
        ...

    def lease_resource_keys(self, lease_id: str) -> list[str]: ...

    # -- locks ------------------------------------------------------------------------------

    def get_lock(self, name: str) -> LockState | None: ...

    def put_lock(self, state: LockState) -> None: ...

    def lock_waiters(self, name: str, limit: int | None = None) -> list[LockWaiter]:
        """The queue of `name`, first come first (its first `limit` waiters when given)."""
        ...

    def count_waiters(self, name: str) -> int:
        """How many waiters `name` has queued."""
        ...

    def count_leaseless_waiters(self) -> int:
        """Queued waiters with no lease of their own: each gets one when the lock reaches it."""
        ...

    def add_waiter(self, waiter: LockWaiter) -> LockWaiter:
        """Appends to the queue; returns the waiter with its `seq`."""
        ...

    def remove_waiter(self, waiter_id: str) -> bool:
        """True if the waiter was still queued."""
        ...

    def queued_request(self, request_key: str) -> LockWaiter | None:
        """The waiter queued for a request (on any lock), if one is."""
        ...

    def take_over_waiter(self, waiter_id: str, new_waiter_id: str, deadline_us: int) -> None:
        """Gives a queued waiter a new id and wait deadline, keeping its place in the queue."""
        ...

    def waiters_under_lease(self, lease_id: str) -> list[LockWaiter]: ...

    def delayed_locks_with_waiters(self, now_us: int, limit: int) -> list[LockState]:
        """Free locks whose lock-delay has ended and that have queued waiters."""
        ...

    def notify(self, notice: Notice) -> None:
        """Publishes `notice` to the store's listeners once (and only if) the body commits."""
        ...


WriteBody = Callable[[WriteTxn], T]


class Store(Protocol):
    # The store's own key for signing page tokens, the same for every replica (set at open).
    page_token_secret: bytes

    async def write(self, body: Callable[[WriteTxn], T]) -> T:
        """Runs `body` atomically and durably: when this returns, the change survives a crash."""
        ...

    async def get(self, key: str) -> Resource | None: ...

    def peek(self, key: str) -> tuple[bool, Resource | None]:
        """The key's current state if the store holds it in memory, at no cost: (True, the
        resource or None when absent) or (False, None) when only a read would tell. Never older
        than any write already acknowledged."""
        ...

    async def answered(self, request_key: str) -> bool:
        """Whether a write with this request key succeeded (and its answer is still kept)."""
        ...

    async def get_version(self, key: str, create_revision: int, version: int) -> Resource | None:
        """A retained version of the key's incarnation created at `create_revision`."""
        ...

    async def list_resources(
        self, prefix: str, start_after: str, limit: int, *, with_values: bool, max_bytes: int = 0
    ) -> list[Resource]:
        """Up to `limit` resources whose key starts with `prefix` and sorts after `start_after`,
        in key order (byte order of the UTF-8 key). With values and `max_bytes`, the page also
        ends at the resource whose `footprint` brings the total to `max_bytes` (so it holds at
        least one); values past that are never read."""
        ...

    async def list_versions(
        self,
        key: str,
        create_revision: int,
        below_version: int,
        limit: int,
        *,
        with_values: bool,
        max_bytes: int = 0,
    ) -> list[Resource]:
        """Retained versions lower than `below_version`, newest first; cut by `max_bytes` as
        `list_resources` is."""
        ...

    async def current_revision(self) -> int: ...

    async def compacted_revision(self) -> int:
        """Events at or below this revision are no longer retained for Watch."""
        ...

    async def events_after(
        self, revision: int, key: str, prefix: bool, limit: int, max_bytes: int = 0
    ) -> list[ChangeEvent]:
        """Retained events after `revision` on `key` (or under it when `prefix`), in order.

        About `limit` events and, with `max_bytes`, about that many bytes of footprints, in
        whole revisions: a page may run past either to finish the revision it ends in, so
        reading on from its last revision misses nothing."""
        ...

    async def get_lease(self, lease_id: str) -> Lease | None: ...

    async def lease_lock_names(self, lease_id: str) -> list[str]: ...

    async def lease_resource_keys(self, lease_id: str) -> list[str]: ...

    async def get_lock(self, name: str) -> LockState | None: ...

    async def waiter_count(self, name: str) -> int: ...

    async def next_deadline(self) -> int | None:
        """The earliest lease expiry or lock-delay end with waiters, in microseconds, if any."""
        ...

    def subscribe(self, listener: NoticeListener) -> None:
        """Calls `listener` on the event loop with the notices of every commit, in commit order."""
        ...

    def now_us(self) -> int: ...

    async def close(self) -> None:
        """Finishes queued writes, then releases the storage."""
        ...


@runtime_checkable
class ReportsAvailability(Protocol):
    """A store that can become unreachable while serving (a database over a network), and says
    so: `listener(False)` on the event loop when it does, `listener(True)` when it is back.
    (An embedded SQLite file cannot be unreachable; a full disk fails writes only.)"""

    def watch_availability(self, listener: Callable[[bool], None]) -> None: ...
