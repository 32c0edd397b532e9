"""`MemoryStore`: the `Store` contract held in one process's memory, for tests.

Bodies run one at a time on the event loop, in the order their writes were called, each against
the latest committed state. A body that raises is rolled back whole by its journal (nothing it
wrote stays, its revision is not used), then its error is raised to the caller; a body that
returns commits at once. Its notices then reach every listener before the writer resumes, as
the SQL stores deliver them.

Time comes from an injectable `Clock`: with a `ManualClock`, leases, lock-delays and waiter
deadlines expire when the test advances the clock, never on their own.

Nothing survives `close` or the process: it is not a backend for `lockservice serve`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TypeVar

from lockservice.errors import StoreUnavailable
from lockservice.model import ChangeEvent, Lease, LeaseListing, LockListing, LockState, LockView, Resource
from lockservice.store.base import Capabilities, DurableState, Notice, NoticeListener, WriteTxn
from lockservice.store.listings import ITEMS_SHOWN
from lockservice.store.memory.clock import Clock, SystemClock
from lockservice.store.memory.tables import Tables, event_page, resource_page, version_page
from lockservice.store.memory.txn import MemoryTxn

__all__ = ["MemoryStore"]

T = TypeVar("T")


class MemoryStore:
    """`Store` in memory. `history_versions`, `request_id_retention_seconds` and
    `watch_history_revisions` mean what they mean for `SqliteStore`; `token_floor` plays a
    restore's floor under fencing tokens (`WriteTxn.token_floor`)."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        history_versions: int = 10,
        request_id_retention_seconds: int = 24 * 3600,
        watch_history_revisions: int = 10_000,
        token_floor: int = 0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self._history = history_versions
        self._answer_retention_us = request_id_retention_seconds * 1_000_000
        self._watch_history = watch_history_revisions
        self._token_floor = token_floor
        self._tables = Tables()
        self._listeners: list[NoticeListener] = []
        self._closed = False
        self.page_token_secret = secrets.token_bytes(32)
        # Bodies that committed (a failed one is not counted), for tests.
        self.committed_bodies = 0
        # It cannot become unreachable and has no file; it alone writes its tables.
        self.capabilities = Capabilities(durable_state=self._durable_state)

    async def close(self) -> None:
        self._closed = True

    def _live(self) -> Tables:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return self._tables

    # -- writes -----------------------------------------------------------------------------

    async def write(self, body: Callable[[WriteTxn], T]) -> T:
        self._live()
        # A write is queued, as on the other stores: writes called together run one after
        # another once the caller yields, and a caller cancelled before its turn writes nothing.
        await asyncio.sleep(0)
        tables = self._live()
        now = self.clock.now_us()
        txn = MemoryTxn(tables, now, self._history, self._token_floor)
        try:
            outcome = body(txn)
        except BaseException:
            txn.journal.rollback()
            raise
        tables.revision = txn.current_revision()
        self.committed_bodies += 1
        self._prune(tables, now)
        if txn.notices:
            self._publish(txn.notices)
        return outcome

    def _publish(self, notices: list[Notice]) -> None:
        loop = asyncio.get_running_loop()
        for listener in self._listeners:
            try:
                listener(list(notices))
            except Exception as error:  # a listener's bug must not fail the committed write
                loop.call_exception_handler({"message": "a store listener failed", "exception": error})

    def _prune(self, tables: Tables, now_us: int) -> None:
        """Drops events beyond the watch window and answers past their retention (oldest
        first: answers are kept in the order they were saved, events in revision order)."""
        horizon = tables.revision - self._watch_history
        if horizon > tables.compacted:
            kept = next((i for i, e in enumerate(tables.events) if e.revision > horizon), len(tables.events))
            del tables.events[:kept]
            tables.compacted = horizon
        answers = tables.answers
        while answers:
            oldest = next(iter(answers))
            if answers[oldest][1] >= now_us - self._answer_retention_us:
                break
            del answers[oldest]

    def subscribe(self, listener: NoticeListener) -> None:
        self._listeners.append(listener)

    def now_us(self) -> int:
        return self.clock.now_us()

    # -- reads ------------------------------------------------------------------------------

    async def get(self, key: str) -> Resource | None:
        return self._live().resources.get(key)

    async def _durable_state(self, key: str) -> DurableState:
        """`Capabilities.durable_state`: everything is in memory, and a body commits as it ends
        (none is ever decided and not yet committed)."""
        tables = self._live()
        return tables.resources.get(key), tables.revision

    async def answered(self, request_key: str) -> bool:
        return request_key in self._live().answers

    async def get_version(self, key: str, create_revision: int, version: int) -> Resource | None:
        found = self._live().versions.get(key, {}).get(version)
        return found if found is not None and found.create_revision == create_revision else None

    async def list_resources(
        self, prefix: str, start_after: str, limit: int, *, with_values: bool, max_bytes: int = 0
    ) -> list[Resource]:
        return resource_page(self._live(), prefix, start_after, limit, with_values, max_bytes)

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
        tables = self._live()
        return version_page(tables, key, create_revision, below_version, limit, with_values, max_bytes)

    async def current_revision(self) -> int:
        return self._live().revision

    async def compacted_revision(self) -> int:
        return self._live().compacted

    async def events_after(
        self, revision: int, key: str, prefix: bool, limit: int, max_bytes: int = 0
    ) -> list[ChangeEvent]:
        return event_page(self._live(), revision, key, prefix, limit, max_bytes)

    async def get_lease(self, lease_id: str) -> Lease | None:
        return self._live().leases.get(lease_id)

    async def lease_lock_names(self, lease_id: str) -> list[str]:
        return self._live().held_lock_names(lease_id)

    async def lease_resource_keys(self, lease_id: str) -> list[str]:
        return self._live().leased_keys(lease_id)

    async def get_lock(self, name: str) -> LockState | None:
        return self._live().locks.get(name)

    async def waiter_count(self, name: str) -> int:
        return len(self._live().queue(name=name))

    async def list_locks(
        self, prefix: str, start_after: str, limit: int, *, include_queue: bool
    ) -> list[LockListing]:
        tables = self._live()
        names = sorted(name for name in tables.locks if name > start_after and name.startswith(prefix))
        listings = []
        for name in names[:limit]:
            state = tables.locks[name]
            lease = tables.leases.get(state.lease_id) if state.held else None
            queue = tables.queue(name=name)
            view = LockView(
                state=state, expire_time_us=lease.expire_time_us if lease else 0, waiters=len(queue)
            )
            listings.append(LockListing(view=view, queue=tuple(queue[:ITEMS_SHOWN]) if include_queue else ()))
        return listings

    async def list_leases(
        self, id_prefix: str, holder: str, start_after: str, limit: int, now_us: int
    ) -> list[LeaseListing]:
        tables = self._live()
        leases = sorted(
            (
                lease
                for lease in tables.leases.values()
                if lease.lease_id > start_after
                and lease.lease_id.startswith(id_prefix)
                and lease.expire_time_us > now_us
                and (not holder or lease.holder == holder)
            ),
            key=lambda lease: lease.lease_id,
        )
        return [
            LeaseListing(
                lease=lease,
                lock_names=tuple(tables.held_lock_names(lease.lease_id)[:ITEMS_SHOWN]),
                resource_keys=tuple(tables.leased_keys(lease.lease_id)[:ITEMS_SHOWN]),
            )
            for lease in leases[:limit]
        ]

    async def next_deadline(self) -> int | None:
        tables = self._live()
        queued = {waiter.name for waiter in tables.waiters.values()}
        deadlines = [lease.expire_time_us for lease in tables.leases.values()]
        deadlines += [
            state.available_time_us
            for state in tables.locks.values()
            if not state.held and state.available_time_us > 0 and state.name in queued
        ]
        return min(deadlines, default=None)
