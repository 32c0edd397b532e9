"""The `WriteTxn` of the PostgreSQL store: one attempt of one body, in its database transaction.

Every read a body makes is `FOR UPDATE`, so each decision is taken on the latest committed row,
which no one else can change until the body commits (see `lockservice.store.postgres.store`).

Statements whose answer the body does not need (writes, NOTIFY, BEGIN, advisory locks) are
queued, and sent in one pipeline (one round trip) just before the next statement whose answer
is needed, or with the COMMIT (`commit`). The database runs the same statements in the same
order in the same transaction as if each were sent alone; only their errors surface later, at
that flush, where they abort the attempt as before (a body never handles a database error).
Pipelined statements are never prepared: psycopg's cache of prepared statements would count a
statement prepared in a pipeline that then aborted, and every later use of it on that
connection would fail ("prepared statement does not exist").

Why it matters: `next_revision` locks the store-wide revision row until COMMIT, and a body's
writes come after it. Sent one by one, every write was a round trip through a busy Python
process with that lock held, which serialised all writes; queued, the lock is held for the
revision's own round trip plus one pipeline that carries the writes and the COMMIT. Revisions
still commit in order, gap-free: the row lock is still taken by the body and released only by
its COMMIT, so the next body gets revision r+1 only after r is committed (Watch's pump reads
events in revision order and relies on exactly that).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from lockservice.model import ChangeEvent, EventType, Lease, LockState, LockWaiter, Resource
from lockservice.store.base import Notice, StoredAnswer
from lockservice.store.postgres.connections import NOW_US_SQL
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
from lockservice.store.sql import POSTGRES, keep_version

__all__ = ["Conn", "PostgresTxn"]

Conn = psycopg.Connection[tuple[Any, ...]]


class PostgresTxn:
    """The `WriteTxn` of one attempt of one body, inside its database transaction."""

    def __init__(self, conn: Conn, now_us: int, history: int, token_floor: int) -> None:
        self._conn = conn
        self._history = history
        self.token_floor = token_floor
        self._revision: int | None = None
        self._event_seq = 0
        self.now_us = now_us
        self.notices: list[Notice] = []
        # Rows this body found missing. Writing one of them must INSERT, never upsert: if another
        # body inserted it meanwhile, the insert fails on the key and this body is re-run against
        # that row (an upsert would silently overwrite it: two creators, two lock holders).
        self._missing: set[tuple[str, str]] = set()
        # Rows this body read FOR UPDATE and found: locked to commit, so an UPDATE of one
        # certainly hits it and can be queued without waiting for its row count.
        self._present: set[tuple[str, str]] = set()
        self._queued: list[tuple[bytes, tuple[Any, ...]]] = []

    def _found(self, table: str, key: str, row: Any) -> Any:
        if row is None:
            self._missing.add((table, key))
        else:
            self._present.add((table, key))
        return row

    def defer(self, sql: bytes, params: tuple[Any, ...] = ()) -> None:
        """Queues a statement whose answer is not needed: sent before the next one that is."""
        self._queued.append((sql, params))

    def _send(self, sql: bytes, params: tuple[Any, ...]) -> psycopg.Cursor[tuple[Any, ...]]:
        """Runs `sql` after the queued statements, all in one round trip; its cursor holds the
        answer."""
        if not self._queued:
            return self._conn.execute(sql, params)
        queued, self._queued = self._queued, []
        with self._conn.pipeline():
            for statement, values in queued:
                self._conn.execute(statement, values, prepare=False)
            return self._conn.execute(sql, params, prepare=False)  # answered at the sync, at exit

    @classmethod
    def begin(cls, conn: Conn, history: int, token_floor: int) -> PostgresTxn:
        """Opens the transaction (on a connection in autocommit mode) and reads the database
        clock, in one round trip."""
        txn = cls(conn, 0, history, token_floor)
        txn.defer(b"BEGIN")
        txn.now_us = txn._one(NOW_US_SQL)[0]
        return txn

    def rollback(self) -> None:
        """Ends a failed attempt's transaction, if the connection still has one open; a broken
        connection is left to the pool, which discards it."""
        self._queued.clear()
        if self._conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            with contextlib.suppress(psycopg.Error):
                self._conn.execute(b"ROLLBACK")

    def commit(self) -> None:
        """Sends the queued statements and COMMIT in one round trip."""
        self.defer(b"COMMIT")
        queued, self._queued = self._queued, []
        with self._conn.pipeline():
            for statement, values in queued:
                self._conn.execute(statement, values, prepare=False)

    def _save(self, table: str, key_column: str, columns: str, values: tuple[Any, ...]) -> None:
        key = values[0]
        if (table, key) not in self._missing:
            names = [c.strip() for c in columns.split(",")]
            assignments = ", ".join(f"{name} = %s" for name in names[1:])
            update = f"UPDATE {table} SET {assignments} WHERE {key_column} = %s".encode()
            if (table, key) in self._present:
                self.defer(update, (*values[1:], key))
                return
            if self._send(update, (*values[1:], key)).rowcount:
                self._present.add((table, key))
                return
        # A duplicate key (another body inserted the row meanwhile) fails the flush: re-run.
        self.defer(f"INSERT INTO {table} ({columns}) VALUES ({POSTGRES.marks(len(values))})".encode(), values)
        self._missing.discard((table, key))
        self._present.add((table, key))

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        self.defer(sql.encode(), params)

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._send(sql.encode(), params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self._send(sql.encode(), params).fetchall()

    @property
    def revision(self) -> int | None:
        return self._revision

    def _record(self, type_: EventType, resource: Resource) -> None:
        if self._revision is None:
            raise RuntimeError("a change needs a revision: call next_revision() first")
        self.defer(
            f"INSERT INTO events (seq, {EVENT_COLUMNS}) VALUES ({POSTGRES.marks(12)})".encode(),
            (self._event_seq, type_.value, self._revision, *resource_values(resource)),
        )
        self._event_seq += 1
        self.notices.append(ChangeEvent(type=type_, resource=resource, revision=self._revision))

    def get(self, key: str) -> Resource | None:
        row = self._one(f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE key = %s FOR UPDATE", (key,))
        return None if self._found("resources", key, row) is None else row_to_resource(row)

    def put(self, resource: Resource) -> None:
        values = resource_values(resource)
        self._save("resources", "key", RESOURCE_COLUMNS, values)
        keep_version(self._execute, POSTGRES, resource, self._history)
        self._record(EventType.PUT, resource)

    def delete(self, key: str, *, expired: bool = False) -> None:
        last = self.get(key)
        if last is None:
            return
        self.defer(b"DELETE FROM resources WHERE key = %s", (key,))
        self.defer(b"DELETE FROM resource_versions WHERE key = %s", (key,))
        self._present.discard(("resources", key))
        self._record(EventType.EXPIRE if expired else EventType.DELETE, last)

    def current_revision(self) -> int:
        if self._revision is not None:
            return self._revision
        revision: int = self._one("SELECT value FROM meta WHERE name = 'revision'")[0]
        return revision

    def next_revision(self) -> int:
        if self._revision is None:
            # The row lock taken here is held to commit: revisions commit in order, gap-free.
            self._revision = self._one(
                "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value"
            )[0]
        assert self._revision is not None
        return self._revision

    def claim_request(self, request_key: str) -> None:
        # Concurrent attempts of one request must see each other's work: without this lock a
        # second attempt could miss the first's answer (or queued waiter), then see the first's
        # write and report a conflict with itself. Held to commit: attempts run one at a time.
        key = int.from_bytes(hashlib.sha256(request_key.encode()).digest()[:8], "big", signed=True)
        self.defer(b"SELECT pg_advisory_xact_lock(%s)", (key,))

    def get_answer(self, request_key: str) -> StoredAnswer | None:
        row = self._one(
            "SELECT fingerprint, answer FROM request_answers WHERE request_id = %s", (request_key,)
        )
        return None if row is None else StoredAnswer(fingerprint=row[0], answer=row[1])

    def save_answer(self, request_key: str, fingerprint: str, answer: str) -> None:
        self.defer(
            b"INSERT INTO request_answers (request_id, fingerprint, answer, created_us) VALUES (%s,%s,%s,%s)",
            (request_key, fingerprint, answer, self.now_us),
        )

    def get_lease(self, lease_id: str) -> Lease | None:
        row = self._one(f"SELECT {LEASE_COLUMNS} FROM leases WHERE lease_id = %s FOR UPDATE", (lease_id,))
        return None if self._found("leases", lease_id, row) is None else row_to_lease(row)

    def put_lease(self, lease: Lease) -> None:
        self._save("leases", "lease_id", LEASE_COLUMNS, lease_values(lease))

    def delete_lease(self, lease_id: str) -> None:
        self.defer(b"DELETE FROM leases WHERE lease_id = %s", (lease_id,))
        self._present.discard(("leases", lease_id))

    def live_lease_count(self, now_us: int) -> int:
        count: int = self._one("SELECT count(*) FROM leases WHERE expire_time_us > %s", (now_us,))[0]
        return count

    def lease_rows(self) -> int:
        rows: int = self._one("SELECT sum(n) FROM lease_counts")[0]
        return rows

    def expired_leases(self, now_us: int, limit: int) -> list[Lease]:
        # SKIP LOCKED: replicas expiring at once split the due leases; each is ended exactly once.
        rows = self._all(
            f"SELECT {LEASE_COLUMNS} FROM leases WHERE expire_time_us <= %s ORDER BY expire_time_us "
            "LIMIT %s FOR UPDATE SKIP LOCKED",
            (now_us, limit),
        )
        return [row_to_lease(row) for row in rows]

    def lease_lock_names(self, lease_id: str) -> list[str]:
        rows = self._all(
            f"SELECT name FROM locks WHERE lease_id = %s AND {POSTGRES.held} ORDER BY name", (lease_id,)
        )
        return [row[0] for row in rows]

    def lease_resource_keys(self, lease_id: str) -> list[str]:
        rows = self._all("SELECT key FROM resources WHERE lease_id = %s ORDER BY key", (lease_id,))
        return [row[0] for row in rows]

    def get_lock(self, name: str) -> LockState | None:
        row = self._one(f"SELECT {LOCK_COLUMNS} FROM locks WHERE name = %s FOR UPDATE", (name,))
        return None if self._found("locks", name, row) is None else row_to_lock(row)

    def put_lock(self, state: LockState) -> None:
        self._save("locks", "name", LOCK_COLUMNS, lock_values(state))

    def lock_waiters(self, name: str, limit: int | None = None) -> list[LockWaiter]:
        rows = self._all(
            f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE name = %s ORDER BY seq LIMIT %s FOR UPDATE",
            (name, limit),
        )
        return [row_to_waiter(row) for row in rows]

    def count_leaseless_waiters(self) -> int:
        count: int = self._one("SELECT count(*) FROM lock_waiters WHERE lease_id = ''")[0]
        return count

    def count_waiters(self, name: str) -> int:
        count: int = self._one("SELECT count(*) FROM lock_waiters WHERE name = %s", (name,))[0]
        return count

    def add_waiter(self, waiter: LockWaiter) -> LockWaiter:
        seq: int = self._one(
            "INSERT INTO lock_waiters (waiter_id, name, holder, lease_id, ttl_seconds, lock_delay_us, "
            "request_id, fingerprint, deadline_us) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING seq",
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
        )[0]
        return replace(waiter, seq=seq)

    def remove_waiter(self, waiter_id: str) -> bool:
        return self._send(b"DELETE FROM lock_waiters WHERE waiter_id = %s", (waiter_id,)).rowcount > 0

    def queued_request(self, request_key: str) -> LockWaiter | None:
        # No index on request_id: the queue table holds only waiting calls, a few rows per lock.
        row = self._one(
            f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE request_id = %s FOR UPDATE", (request_key,)
        )
        return None if row is None else row_to_waiter(row)

    def take_over_waiter(self, waiter_id: str, new_waiter_id: str, deadline_us: int) -> None:
        self.defer(
            b"UPDATE lock_waiters SET waiter_id = %s, deadline_us = %s WHERE waiter_id = %s",
            (new_waiter_id, deadline_us, waiter_id),
        )

    def waiters_under_lease(self, lease_id: str) -> list[LockWaiter]:
        rows = self._all(
            f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE lease_id = %s ORDER BY seq FOR UPDATE",
            (lease_id,),
        )
        return [row_to_waiter(row) for row in rows]

    def delayed_locks_with_waiters(self, now_us: int, limit: int) -> list[LockState]:
        rows = self._all(
            f"SELECT {LOCK_COLUMNS} FROM locks WHERE NOT held AND available_time_us <= %s "
            "AND EXISTS (SELECT 1 FROM lock_waiters w WHERE w.name = locks.name) ORDER BY name LIMIT %s "
            "FOR UPDATE SKIP LOCKED",
            (now_us, limit),
        )
        return [row_to_lock(row) for row in rows]

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)
