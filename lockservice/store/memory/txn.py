"""The `WriteTxn` the memory store hands a body: reads and writes the tables in place, every
change through the body's journal, so a body that raises leaves nothing behind."""

from __future__ import annotations

from dataclasses import replace

from lockservice.model import ChangeEvent, EventType, Lease, LockState, LockWaiter, Resource
from lockservice.store.base import Notice, StoredAnswer
from lockservice.store.memory.journal import Journal
from lockservice.store.memory.tables import Tables

__all__ = ["MemoryTxn", "SecondAnswer"]


class SecondAnswer(RuntimeError):
    """A body tried to store a second answer for one request: a bug, never a domain failure."""


class MemoryTxn:
    """One body's view of the tables. Bodies run one at a time, so every read is the latest
    committed state plus this body's own changes, and `claim_request` has nothing to wait for."""

    def __init__(self, tables: Tables, now_us: int, history: int, token_floor: int) -> None:
        self._tables = tables
        self._history = history
        self._base_revision = tables.revision
        self._revision = tables.revision
        self.journal = Journal()
        self.now_us = now_us
        self.token_floor = token_floor
        self.notices: list[Notice] = []

    # -- resources and revisions ------------------------------------------------------------

    def _record(self, type_: EventType, resource: Resource) -> None:
        if self._revision == self._base_revision:
            raise RuntimeError("a change needs a revision: call next_revision() first")
        event = ChangeEvent(type=type_, resource=resource, revision=self._revision)
        self.journal.append(self._tables.events, event)
        self.notices.append(event)

    def get(self, key: str) -> Resource | None:
        return self._tables.resources.get(key)

    def put(self, resource: Resource) -> None:
        tables, key = self._tables, resource.key
        self.journal.set(tables.resources, key, resource)
        kept = tables.versions.get(key)
        if kept is None or resource.version == 1:
            # A new incarnation: versions of an earlier one must not be mistaken for its own.
            kept = {}
            self.journal.set(tables.versions, key, kept)
        self.journal.set(kept, resource.version, resource)
        oldest_kept = resource.version - self._history + 1
        for version in [version for version in kept if version < oldest_kept]:
            self.journal.pop(kept, version)
        self._record(EventType.PUT, resource)

    def delete(self, key: str, *, expired: bool = False) -> None:
        last = self.journal.pop(self._tables.resources, key)
        if last is None:
            return
        self.journal.pop(self._tables.versions, key)
        self._record(EventType.EXPIRE if expired else EventType.DELETE, last)

    def current_revision(self) -> int:
        return self._revision

    def next_revision(self) -> int:
        if self._revision == self._base_revision:
            self._revision += 1
        return self._revision

    # -- request answers --------------------------------------------------------------------

    def claim_request(self, request_key: str) -> None:
        pass  # one body at a time: every body has every key to itself

    def get_answer(self, request_key: str) -> StoredAnswer | None:
        saved = self._tables.answers.get(request_key)
        return None if saved is None else saved[0]

    def save_answer(self, request_key: str, fingerprint: str, answer: str) -> None:
        if request_key in self._tables.answers:
            raise SecondAnswer(f"a second answer for one request: {request_key!r} is answered already")
        stored = (StoredAnswer(fingerprint=fingerprint, answer=answer), self.now_us)
        self.journal.set(self._tables.answers, request_key, stored)

    # -- leases -----------------------------------------------------------------------------

    def get_lease(self, lease_id: str) -> Lease | None:
        return self._tables.leases.get(lease_id)

    def put_lease(self, lease: Lease) -> None:
        self.journal.set(self._tables.leases, lease.lease_id, lease)

    def delete_lease(self, lease_id: str) -> None:
        self.journal.pop(self._tables.leases, lease_id)

    def live_lease_count(self, now_us: int) -> int:
        return sum(1 for lease in self._tables.leases.values() if lease.expire_time_us > now_us)

    def lease_rows(self) -> int:
        return len(self._tables.leases)

    def expired_leases(self, now_us: int, limit: int) -> list[Lease]:
        due = [lease for lease in self._tables.leases.values() if lease.expire_time_us <= now_us]
        return sorted(due, key=lambda lease: lease.expire_time_us)[:limit]

    def lease_lock_names(self, lease_id: str) -> list[str]:
        return self._tables.held_lock_names(lease_id)

    def lease_resource_keys(self, lease_id: str) -> list[str]:
        return self._tables.leased_keys(lease_id)

    # -- locks and their queues -------------------------------------------------------------

    def get_lock(self, name: str) -> LockState | None:
        return self._tables.locks.get(name)

    def put_lock(self, state: LockState) -> None:
        self.journal.set(self._tables.locks, state.name, state)

    def lock_waiters(self, name: str, limit: int | None = None) -> list[LockWaiter]:
        queue = self._tables.queue(name=name)
        return queue if limit is None else queue[:limit]

    def count_waiters(self, name: str) -> int:
        return sum(1 for waiter in self._tables.waiters.values() if waiter.name == name)

    def count_leaseless_waiters(self) -> int:
        return sum(1 for waiter in self._tables.waiters.values() if not waiter.lease_id)

    def add_waiter(self, waiter: LockWaiter) -> LockWaiter:
        if waiter.waiter_id in self._tables.waiters:
            raise ValueError(f"waiter {waiter.waiter_id} is queued already")
        # Sequence numbers are never reused, even when the body rolls back (as a SQL sequence).
        self._tables.last_seq += 1
        queued = replace(waiter, seq=self._tables.last_seq)
        self.journal.set(self._tables.waiters, queued.waiter_id, queued)
        return queued

    def remove_waiter(self, waiter_id: str) -> bool:
        return self.journal.pop(self._tables.waiters, waiter_id) is not None

    def queued_request(self, request_key: str) -> LockWaiter | None:
        return next((w for w in self._tables.waiters.values() if w.request_id == request_key), None)

    def take_over_waiter(self, waiter_id: str, new_waiter_id: str, deadline_us: int) -> None:
        waiter = self.journal.pop(self._tables.waiters, waiter_id)
        if waiter is not None:
            taken = replace(waiter, waiter_id=new_waiter_id, deadline_us=deadline_us)
            self.journal.set(self._tables.waiters, new_waiter_id, taken)

    def waiters_under_lease(self, lease_id: str) -> list[LockWaiter]:
        return self._tables.queue(lease_id=lease_id)

    def delayed_locks_with_waiters(self, now_us: int, limit: int) -> list[LockState]:
        queued = {waiter.name for waiter in self._tables.waiters.values()}
        due = [
            state
            for name, state in sorted(self._tables.locks.items())
            if not state.held and state.available_time_us <= now_us and name in queued
        ]
        return due[:limit]

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)
