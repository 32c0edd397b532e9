"""The `WriteTxn` of the SQLite store: one body, on the writer's connection, in its savepoint
(opened before the body's first statement: a body that reads only what earlier bodies of its
batch wrote, as a loser on a hot key does, runs no statement at all)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from lockservice.model import ChangeEvent, EventType, Lease, LockState, LockWaiter, Resource
from lockservice.store.base import Notice, StoredAnswer
from lockservice.store.rows import (
    EVENT_COLUMNS,
    LEASE_COLUMNS,
    LOCK_COLUMNS,
    RESOURCE_COLUMNS,
    WAITER_COLUMNS,
    lease_values,
    lock_values,
    resource_values,
    row_to_lease,
    row_to_lock,
    row_to_resource,
    row_to_waiter,
)
from lockservice.store.sql import SQLITE, keep_version

__all__ = ["TEMP_WAITERS", "SqliteTxn"]

# The lock queues live in a TEMP table of the writer's connection: in memory, transactional
# (a body's savepoint undoes its queue changes with the rest), and never written to the WAL, so
# queueing costs no fsync. Waiters belong to calls of this process and end with it anyway.
TEMP_WAITERS = (
    "PRAGMA temp_store = MEMORY",
    "CREATE TEMP TABLE lock_waiters (seq INTEGER PRIMARY KEY, waiter_id TEXT NOT NULL UNIQUE, "
    "name TEXT NOT NULL, holder TEXT NOT NULL, lease_id TEXT NOT NULL, ttl_seconds INTEGER NOT NULL, "
    "lock_delay_us INTEGER NOT NULL, request_id TEXT NOT NULL, fingerprint TEXT NOT NULL, "
    "deadline_us INTEGER NOT NULL)",
    "CREATE INDEX temp.lock_waiters_by_name ON lock_waiters (name, seq)",
    "CREATE INDEX temp.lock_waiters_by_lease ON lock_waiters (lease_id)",
    "CREATE INDEX temp.lock_waiters_by_request ON lock_waiters (request_id)",
)

_UPSERT_LEASE = (
    f"INSERT INTO leases ({LEASE_COLUMNS}) VALUES (?,?,?,?,?,?) ON CONFLICT (lease_id) DO UPDATE SET "
    + ", ".join(f"{name.strip()} = excluded.{name.strip()}" for name in LEASE_COLUMNS.split(",")[1:])
)


# The statements of every put, built once: a body runs them thousands of times a second.
_GET_RESOURCE = f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE key = ?"
_PUT_RESOURCE = f"INSERT OR REPLACE INTO resources ({RESOURCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)"
_INSERT_EVENT = f"INSERT INTO events (seq, {EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


class SqliteTxn:
    """The `WriteTxn` handed to one body, on the writer's connection inside its savepoint."""

    __slots__ = (
        "_base_revision",
        "_batch_written",
        "_conn",
        "_event_seq",
        "_history",
        "_revision",
        "in_savepoint",
        "notices",
        "now_us",
        "token_floor",
        "waiter_changes",
        "written",
    )

    def __init__(
        self,
        conn: sqlite3.Connection,
        base_revision: int,
        now_us: int,
        history: int,
        token_floor: int,
        batch_written: dict[str, Resource | None] | None = None,
    ) -> None:
        """`batch_written`: the states of keys that earlier bodies of the batch (committing with
        this one) wrote, which `get` answers without a statement."""
        self._conn = conn
        self._batch_written = {} if batch_written is None else batch_written
        # Whether the body's savepoint is open (the writer rolls back to it, or releases it).
        self.in_savepoint = False
        # The states this body wrote, by key (None: deleted), for the bodies after it.
        self.written: dict[str, Resource | None] = {}
        self._base_revision = base_revision
        self._revision = base_revision
        self._history = history
        self._event_seq = 0
        self.now_us = now_us
        self.token_floor = token_floor
        self.notices: list[Notice] = []
        # Queue length changes by lock name, published to the readers when the body commits.
        self.waiter_changes: dict[str, int] = {}

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        if not self.in_savepoint:
            self._conn.execute("SAVEPOINT body")
            self.in_savepoint = True
        return self._conn.execute(sql, params)

    def _record(self, type_: EventType, resource: Resource) -> None:
        if self._revision == self._base_revision:
            raise RuntimeError("a change needs a revision: call next_revision() first")
        self._execute(
            _INSERT_EVENT,
            (self._event_seq, type_.value, self._revision, *resource_values(resource)),
        )
        self._event_seq += 1
        self.notices.append(ChangeEvent(type=type_, resource=resource, revision=self._revision))

    def get(self, key: str) -> Resource | None:
        if key in self.written:
            return self.written[key]
        if key in self._batch_written:
            return self._batch_written[key]
        row = self._execute(_GET_RESOURCE, (key,)).fetchone()
        return None if row is None else row_to_resource(row)

    def put(self, resource: Resource) -> None:
        values = resource_values(resource)
        self._execute(_PUT_RESOURCE, values)
        keep_version(self._execute, SQLITE, resource, self._history)
        self._record(EventType.PUT, resource)
        self.written[resource.key] = resource

    def delete(self, key: str, *, expired: bool = False) -> None:
        last = self.get(key)
        if last is None:
            return
        self._execute("DELETE FROM resources WHERE key = ?", (key,))
        self._execute("DELETE FROM resource_versions WHERE key = ?", (key,))
        self._record(EventType.EXPIRE if expired else EventType.DELETE, last)
        self.written[key] = None

    def current_revision(self) -> int:
        return self._revision

    def next_revision(self) -> int:
        if self._revision == self._base_revision:
            self._revision += 1
        return self._revision

    def claim_request(self, request_key: str) -> None:
        pass  # one writer runs one body at a time: every body has every key to itself

    def get_answer(self, request_key: str) -> StoredAnswer | None:
        row = self._execute(
            "SELECT fingerprint, answer FROM request_answers WHERE request_id = ?", (request_key,)
        ).fetchone()
        return None if row is None else StoredAnswer(fingerprint=row[0], answer=row[1])

    def save_answer(self, request_key: str, fingerprint: str, answer: str) -> None:
        self._execute(
            "INSERT INTO request_answers (request_id, fingerprint, answer, created_us) VALUES (?,?,?,?)",
            (request_key, fingerprint, answer, self.now_us),
        )

    def get_lease(self, lease_id: str) -> Lease | None:
        row = self._execute(f"SELECT {LEASE_COLUMNS} FROM leases WHERE lease_id = ?", (lease_id,)).fetchone()
        return None if row is None else row_to_lease(row)

    def put_lease(self, lease: Lease) -> None:
        # An upsert, not INSERT OR REPLACE: the lease_rows count's insert trigger fires for new
        # leases only (a replace would count a refresh as one more).
        self._execute(_UPSERT_LEASE, lease_values(lease))

    def lease_rows(self) -> int:
        rows: int = self._execute("SELECT value FROM meta WHERE name = 'lease_rows'").fetchone()[0]
        return rows

    def delete_lease(self, lease_id: str) -> None:
        self._execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))

    def live_lease_count(self, now_us: int) -> int:
        count: int = self._execute(
            "SELECT count(*) FROM leases WHERE expire_time_us > ?", (now_us,)
        ).fetchone()[0]
        return count

    def expired_leases(self, now_us: int, limit: int) -> list[Lease]:
        rows = self._execute(
            f"SELECT {LEASE_COLUMNS} FROM leases WHERE expire_time_us <= ? ORDER BY expire_time_us LIMIT ?",
            (now_us, limit),
        ).fetchall()
        return [row_to_lease(row) for row in rows]

    def lease_lock_names(self, lease_id: str) -> list[str]:
        rows = self._execute(
            f"SELECT name FROM locks WHERE lease_id = ? AND {SQLITE.held} ORDER BY name", (lease_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def lease_resource_keys(self, lease_id: str) -> list[str]:
        rows = self._execute(
            "SELECT key FROM resources WHERE lease_id = ? ORDER BY key", (lease_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def get_lock(self, name: str) -> LockState | None:
        row = self._execute(f"SELECT {LOCK_COLUMNS} FROM locks WHERE name = ?", (name,)).fetchone()
        return None if row is None else row_to_lock(row)

    def put_lock(self, state: LockState) -> None:
        self._execute(
            f"INSERT OR REPLACE INTO locks ({LOCK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", lock_values(state)
        )

    def lock_waiters(self, name: str, limit: int | None = None) -> list[LockWaiter]:
        rows = self._execute(
            f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE name = ? ORDER BY seq LIMIT ?",
            (name, -1 if limit is None else limit),
        ).fetchall()
        return [row_to_waiter(row) for row in rows]

    def count_waiters(self, name: str) -> int:
        count: int = self._execute("SELECT count(*) FROM lock_waiters WHERE name = ?", (name,)).fetchone()[0]
        return count

    def count_leaseless_waiters(self) -> int:
        count: int = self._execute("SELECT count(*) FROM lock_waiters WHERE lease_id = ''").fetchone()[0]
        return count

    def _waiter_change(self, name: str, change: int) -> None:
        self.waiter_changes[name] = self.waiter_changes.get(name, 0) + change

    def add_waiter(self, waiter: LockWaiter) -> LockWaiter:
        cursor = self._execute(
            "INSERT INTO lock_waiters (waiter_id, name, holder, lease_id, ttl_seconds, lock_delay_us, "
            "request_id, fingerprint, deadline_us) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                waiter.waiter_id,
                waiter.name,
                waiter.holder,
                waiter.lease_id,
                waiter.ttl_seconds,
                waiter.lock_delay_us,
                waiter.request_id,
                waiter.fingerprint,
                waiter.deadline_us,
            ),
        )
        seq = cursor.lastrowid
        assert seq is not None
        self._waiter_change(waiter.name, 1)
        return replace(waiter, seq=seq)

    def remove_waiter(self, waiter_id: str) -> bool:
        row = self._execute(
            "DELETE FROM lock_waiters WHERE waiter_id = ? RETURNING name", (waiter_id,)
        ).fetchone()
        if row is None:
            return False
        self._waiter_change(row[0], -1)
        return True

    def queued_request(self, request_key: str) -> LockWaiter | None:
        row = self._execute(
            f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE request_id = ?", (request_key,)
        ).fetchone()
        return None if row is None else row_to_waiter(row)

    def take_over_waiter(self, waiter_id: str, new_waiter_id: str, deadline_us: int) -> None:
        self._execute(
            "UPDATE lock_waiters SET waiter_id = ?, deadline_us = ? WHERE waiter_id = ?",
            (new_waiter_id, deadline_us, waiter_id),
        )

    def waiters_under_lease(self, lease_id: str) -> list[LockWaiter]:
        rows = self._execute(
            f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE lease_id = ? ORDER BY seq", (lease_id,)
        ).fetchall()
        return [row_to_waiter(row) for row in rows]

    def delayed_locks_with_waiters(self, now_us: int, limit: int) -> list[LockState]:
        rows = self._execute(
            f"SELECT {LOCK_COLUMNS} FROM locks WHERE held = 0 AND available_time_us <= ? "
            "AND EXISTS (SELECT 1 FROM lock_waiters w WHERE w.name = locks.name) ORDER BY name LIMIT ?",
            (now_us, limit),
        ).fetchall()
        return [row_to_lock(row) for row in rows]

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)
