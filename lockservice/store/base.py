"""The storage contract. Everything above this module speaks `Store`; only stores know SQL.

An atomic write is a plain function of a transaction, `body(txn)`: it reads, compares, writes,
and raises a `LockserviceError` to abort. The store decides how to run it (SQLite: many bodies
per commit, a savepoint each; PostgreSQL: row locks and re-runs), so a body must be re-runnable
and must do nothing but talk to `txn`.

Errors, for every method below: a store that cannot reach or use its storage raises
`StoreUnavailable` (with `metadata["cause"]` "DISK_FULL" for a full disk); nothing else is
raised but what a body itself raises, and a second answer for one request (a bug). `WriteTxn`
methods never raise a domain error of their own: the rules are the body's.

Ordering: revisions are store-wide, increase by one per body that changes something, and commit
in order with no gaps; a read started after a write was acknowledged sees it.

Backends: `lockservice.store.sqlite`, `lockservice.store.postgres` (and an in-memory store for
tests); what they share of their SQL is `lockservice.store.sql`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from lockservice.model import (
    ChangeEvent,
    Lease,
    LeaseListing,
    LockGranted,
    LockListing,
    LockState,
    LockWaiter,
    NoticesLost,
    Resource,
    WaiterFailed,
)

__all__ = [
    "AvailabilityListener",
    "Capabilities",
    "CommitObserver",
    "DurableState",
    "Notice",
    "NoticeListener",
    "Store",
    "StoredAnswer",
    "WriteBody",
    "WriteTxn",
]

T = TypeVar("T")

# What a committed body tells listeners: its changes (for Watch) and lock hand-overs; and
# NoticesLost, when some of other processes' may not have arrived.
Notice = ChangeEvent | LockGranted | WaiterFailed | NoticesLost
NoticeListener = Callable[[list[Notice]], None]
# Told False when the store becomes unreachable while serving, True when it is back.
AvailabilityListener = Callable[[bool], None]
# Told (bodies in the commit, seconds the commit took) after every commit.
CommitObserver = Callable[[int, float], None]
# What `Capabilities.durable_state` knows of a key: its state (None: absent) and the store
# revision that state is current at (the last committed revision, as a body would see it).
DurableState = tuple[Resource | None, int]


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

    def get(self, key: str) -> Resource | None:
        """The key's current state in this transaction (None: absent). The store keeps the row
        to itself until the body ends (PostgreSQL: FOR UPDATE), so a decision taken on it holds."""
        ...

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

    def get_lease(self, lease_id: str) -> Lease | None:
        """The lease, whether or not its deadline has passed (expiry is the body's rule), held
        for this body as `get` holds a resource."""
        ...

    def put_lease(self, lease: Lease) -> None:
        """Creates or replaces the lease (a refresh replaces its deadline)."""
        ...

    def delete_lease(self, lease_id: str) -> None:
        """Removes the lease row only: its locks, keys and waiters are the body's to end first.
        Deleting an absent lease does nothing."""
        ...

    def live_lease_count(self, now_us: int) -> int:
        """Leases whose deadline is after `now_us`."""
        ...

    def lease_rows(self) -> int:
        """Every stored lease, live or past its deadline but not yet ended: an upper bound of
        `live_lease_count` that costs no scan (a count kept as leases are stored and deleted)."""
        ...

    def expired_leases(self, now_us: int, limit: int) -> list[Lease]:
        """Up to `limit` leases whose deadline is at or before `now_us`, earliest first. Under
        concurrent bodies (PostgreSQL replicas) a lease another body is ending is skipped, so
        each is ended once."""
        ...

    def lease_lock_names(self, lease_id: str) -> list[str]:
        """Names of the locks held under the lease."""
        ...

    def lease_resource_keys(self, lease_id: str) -> list[str]:
        """Keys of the resources attached to the lease, in key order."""
        ...

    # -- locks ------------------------------------------------------------------------------

    def get_lock(self, name: str) -> LockState | None:
        """The lock's stored state (None: never held), held for this body as `get` holds a
        resource."""
        ...

    def put_lock(self, state: LockState) -> None:
        """Creates or replaces the lock's state (holder, token, lock-delay)."""
        ...

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

    def waiters_under_lease(self, lease_id: str) -> list[LockWaiter]:
        """Waiters queued (on any lock) under the lease, in queue order."""
        ...

    def delayed_locks_with_waiters(self, now_us: int, limit: int) -> list[LockState]:
        """Up to `limit` free locks whose lock-delay has ended by `now_us` and that have queued
        waiters, by name (skipping any another body is handing over)."""
        ...

    def notify(self, notice: Notice) -> None:
        """Publishes `notice` to the store's listeners once (and only if) the body commits."""
        ...


WriteBody = Callable[[WriteTxn], T]


class Store(Protocol):
    """A store, open (each backend has an `open` class method) until `close`. Reads outside a
    body see the last committed state and take no locks."""

    # The store's own key for signing page tokens, the same for every replica (set at open).
    page_token_secret: bytes
    # What the store reports about itself beyond this contract (`Capabilities`).
    capabilities: Capabilities

    async def write(self, body: Callable[[WriteTxn], T]) -> T:
        """Runs `body` atomically and durably: when this returns, the change survives a crash.

        Returns what the body returned; re-raises what it raised, with none of its changes made
        (and none of its notices published). The body may run more than once (PostgreSQL re-runs
        it on a conflict), on another thread than the caller's. StoreUnavailable when the store
        cannot commit (or is closed): then nothing of the body was committed either."""
        ...

    async def get(self, key: str) -> Resource | None:
        """The key's current state, None when absent."""
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

    async def current_revision(self) -> int:
        """The last committed revision (0 for an empty store)."""
        ...

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

    async def get_lease(self, lease_id: str) -> Lease | None:
        """The stored lease, even past its deadline until a body ends it."""
        ...

    async def lease_lock_names(self, lease_id: str) -> list[str]:
        """Names of the locks held under the lease, in name order."""
        ...

    async def lease_resource_keys(self, lease_id: str) -> list[str]:
        """Keys of the resources attached to the lease, in key order."""
        ...

    async def get_lock(self, name: str) -> LockState | None:
        """The lock's stored state, None when it was never held."""
        ...

    async def waiter_count(self, name: str) -> int:
        """How many waiters `name` has queued, as of the last commit."""
        ...

    async def list_locks(
        self, prefix: str, start_after: str, limit: int, *, include_queue: bool
    ) -> list[LockListing]:
        """At most `limit` locks named `prefix...` after `start_after`, in name order
        (`lockservice.store.listings.lock_page`)."""
        ...

    async def list_leases(
        self, id_prefix: str, holder: str, start_after: str, limit: int, now_us: int
    ) -> list[LeaseListing]:
        """At most `limit` leases live at `now_us`, ids `id_prefix...` after `start_after`, of
        `holder` when set, in id order (`lockservice.store.listings.lease_page`)."""
        ...

    async def next_deadline(self) -> int | None:
        """The earliest lease expiry or lock-delay end with waiters, in microseconds, if any."""
        ...

    def subscribe(self, listener: NoticeListener) -> None:
        """Calls `listener` on the event loop with the notices of every commit, in commit order
        (every replica's, for a shared database): each change event once, in revision order."""
        ...

    def now_us(self) -> int:
        """The store's clock in microseconds since the epoch, the one `WriteTxn.now_us` uses
        (PostgreSQL: the database's, so every replica agrees on lease deadlines)."""
        ...

    async def close(self) -> None:
        """Finishes queued writes, then releases the storage."""
        ...


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a store can report about itself beyond the contract, declared by the store (its
    `capabilities` attribute): each is None when the store cannot. Callers test the field, never
    the store's class.

    - `watch_availability(listener)`: the store can become unreachable while serving (a database
      over a network); `listener(False)` on the event loop when it does, `listener(True)` when it
      is back. (An embedded SQLite file cannot be unreachable; a full disk fails writes only.)
    - `observe_commits(observer)`: calls `observer(bodies, seconds)` after every commit, on
      whichever thread committed (keep it cheap and thread-safe).
    - `stats()`: what the store holds, for gauges: {"leases", "locks_held", "waiters",
      "size_bytes"}; raises StoreUnavailable when the store cannot be read.
    - `commit_counts()`: (commits, bodies committed) since open, for group-commit counters.
    - `durable_state(key)`: the store alone writes its storage (no other process or replica
      does), so it can say from memory what the latest durable state of a key is: (the resource
      or None when absent, the store revision it is current at), or None when only a read would
      tell. The state is durable and never older than an acknowledged write; when a write of the
      key is already decided and being made durable, the call waits for that commit to end
      first (and then answers the state it left, or the older one if the commit failed), so the
      answer is never older than a decided write either. Never a state not yet durable.
    """

    watch_availability: Callable[[AvailabilityListener], None] | None = None
    observe_commits: Callable[[CommitObserver], None] | None = None
    stats: Callable[[], Awaitable[dict[str, int]]] | None = None
    commit_counts: Callable[[], tuple[int, int]] | None = None
    durable_state: Callable[[str], Awaitable[DurableState | None]] | None = None
