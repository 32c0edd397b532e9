"""The PostgreSQL store: N stateless lockservice replicas over one database.

Concurrency control: READ COMMITTED with row locks. Every read a body makes is `FOR UPDATE`,
so each decision (compare a version, check a holder, pick the next waiter) is taken on the latest
committed row, which no one else can change until the body commits. Two bodies that both find a
row missing and insert it collide on the primary key; the loser is re-run and then sees the row.
Deadlocks and serialization failures are re-run too (bodies are re-runnable by contract). We
chose this over SERIALIZABLE because every change also bumps the one store-wide revision row:
under SERIALIZABLE that hot row would turn most concurrent writes into retries.

Ordering: a body takes its revision by updating the revision row, and holds that row lock until
it commits, so revisions commit in order with no gaps. Watch events are therefore read back from
the `events` table in revision order by every replica (`_pump_events`), woken by LISTEN/NOTIFY;
lock hand-overs are NOTIFY payloads that wake the waiting call on whichever replica holds it.

Time for leases comes from the database clock (`clock_timestamp()`), never the replicas'.

Outages: a call waits for a connection no longer than `lockservice.deadlines.store_deadline()`
(its caller's deadline, at most 5 s), then answers StoreUnavailable. A probe (`SELECT 1` through
the pool every 2 s, and a direct connection when the pool has none to give, which tells an
unreachable database from a busy pool) decides whether the database is reachable; the change is
logged once (then once every 30 s while it lasts) and told to `watch_availability` listeners
(gRPC health). The pool's own reconnection messages are silenced: the probe reports the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import structlog
from psycopg import errors as pg_errors

from lockservice.codec import decode_lock_view, encode_lock_view
from lockservice.deadlines import store_deadline
from lockservice.errors import LockserviceError, StoreUnavailable
from lockservice.model import (
    ChangeEvent,
    EventType,
    Lease,
    LockGranted,
    LockState,
    LockWaiter,
    Resource,
    WaiterFailed,
)
from lockservice.store.base import Notice, NoticeListener, StoredAnswer, WriteTxn
from lockservice.store.outage import AvailabilityListener, Outage, disk_full_error, disk_full_outage
from lockservice.store.pages import event_page, resource_page, version_page
from lockservice.store.postgres_connections import (
    CONNECT_TIMEOUT_SECONDS,
    NOW_US_SQL,
    await_database,
    connection_cause,
    describe_target,
    probe,
    quiet_pool_log,
)
from lockservice.store.postgres_schema import migrate
from lockservice.store.rows import (
    EVENT_COLUMNS,
    LEASE_COLUMNS,
    LOCK_COLUMNS,
    PAGE_TOKEN_SECRET_SQL,
    RESOURCE_COLUMNS,
    WAITER_COLUMNS,
    lease_values,
    lock_values,
    metadata_columns,
    resource_values,
    row_to_lease,
    row_to_lock,
    row_to_resource,
    row_to_waiter,
)

__all__ = ["PostgresStore", "SecondAnswer"]

_log = structlog.get_logger("lockservice.store.postgres")

T = TypeVar("T")

_EVENTS_CHANNEL = "lockservice_events"
_LOCKS_CHANNEL = "lockservice_locks"
_MAX_ATTEMPTS = 30
# A unique violation is retryable (two bodies inserted one new row: the loser re-runs and sees
# the winner's), except on request_answers: attempts of one request are serialized by
# `claim_request`, so a second answer is a bug, and re-running the body cannot cure it.
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.UniqueViolation)
_ANSWERS_TABLE = "request_answers"
_PUMP_PAGE = 1000
_MAINTENANCE_SECONDS = 10.0
# The pool gives up re-connecting after this long, and tries again when a call asks for a
# connection: recovery is noticed at once, never after the pool's own backoff (up to minutes).
_RECONNECT_SECONDS = 2.0
# The availability probe: how often while reachable, and while not; its connection wait.
_PROBE_SECONDS = 2.0
_PROBE_DOWN_SECONDS = 1.0
_LISTEN_RETRY_SECONDS = (0.5, 4.0)
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)

_META_COLUMNS = metadata_columns("''::bytea")


def _marks(count: int) -> str:
    return ",".join(["%s"] * count)


def _encode_notice(notice: LockGranted | WaiterFailed) -> str:
    if isinstance(notice, LockGranted):
        return json.dumps({"granted": notice.waiter_id, "lock": json.loads(encode_lock_view(notice.lock))})
    return json.dumps(
        {"failed": notice.waiter_id, "name": notice.name, "reason": notice.reason, "message": notice.message}
    )


def _decode_notice(payload: str) -> LockGranted | WaiterFailed:
    data = json.loads(payload)
    if "granted" in data:
        return LockGranted(waiter_id=data["granted"], lock=decode_lock_view(json.dumps(data["lock"])))
    return WaiterFailed(
        waiter_id=data["failed"], name=data["name"], reason=data["reason"], message=data["message"]
    )


Conn = psycopg.Connection[tuple[Any, ...]]


class _PostgresTxn:
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

    def _found(self, table: str, key: str, row: Any) -> Any:
        if row is None:
            self._missing.add((table, key))
        return row

    def _save(self, table: str, key_column: str, columns: str, values: tuple[Any, ...]) -> None:
        key = values[0]
        if (table, key) not in self._missing:
            names = [c.strip() for c in columns.split(",")]
            assignments = ", ".join(f"{name} = %s" for name in names[1:])
            updated = self._conn.execute(
                f"UPDATE {table} SET {assignments} WHERE {key_column} = %s".encode(), (*values[1:], key)
            ).rowcount
            if updated:
                return
        self._conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({_marks(len(values))})".encode(), values)
        self._missing.discard((table, key))

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._conn.execute(sql.encode(), params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self._conn.execute(sql.encode(), params).fetchall()

    @property
    def revision(self) -> int | None:
        return self._revision

    def _record(self, type_: EventType, resource: Resource) -> None:
        if self._revision is None:
            raise RuntimeError("a change needs a revision: call next_revision() first")
        self._conn.execute(
            f"INSERT INTO events (seq, {EVENT_COLUMNS}) VALUES ({_marks(12)})".encode(),
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
        if resource.version == 1:
            # A new incarnation: versions of an earlier one must not be mistaken for its own.
            self._conn.execute(b"DELETE FROM resource_versions WHERE key = %s", (resource.key,))
        self._conn.execute(
            f"INSERT INTO resource_versions ({RESOURCE_COLUMNS}) VALUES ({_marks(9)})".encode(),
            values,
        )
        oldest_kept = resource.version - self._history + 1
        if oldest_kept > 1:
            self._conn.execute(
                b"DELETE FROM resource_versions WHERE key = %s AND version < %s", (resource.key, oldest_kept)
            )
        self._record(EventType.PUT, resource)

    def delete(self, key: str, *, expired: bool = False) -> None:
        last = self.get(key)
        if last is None:
            return
        self._conn.execute(b"DELETE FROM resources WHERE key = %s", (key,))
        self._conn.execute(b"DELETE FROM resource_versions WHERE key = %s", (key,))
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
        self._conn.execute(b"SELECT pg_advisory_xact_lock(%s)", (key,))

    def get_answer(self, request_key: str) -> StoredAnswer | None:
        row = self._one(
            "SELECT fingerprint, answer FROM request_answers WHERE request_id = %s", (request_key,)
        )
        return None if row is None else StoredAnswer(fingerprint=row[0], answer=row[1])

    def save_answer(self, request_key: str, fingerprint: str, answer: str) -> None:
        self._conn.execute(
            b"INSERT INTO request_answers (request_id, fingerprint, answer, created_us) VALUES (%s,%s,%s,%s)",
            (request_key, fingerprint, answer, self.now_us),
        )

    def get_lease(self, lease_id: str) -> Lease | None:
        row = self._one(f"SELECT {LEASE_COLUMNS} FROM leases WHERE lease_id = %s FOR UPDATE", (lease_id,))
        return None if self._found("leases", lease_id, row) is None else row_to_lease(row)

    def put_lease(self, lease: Lease) -> None:
        self._save("leases", "lease_id", LEASE_COLUMNS, lease_values(lease))

    def delete_lease(self, lease_id: str) -> None:
        self._conn.execute(b"DELETE FROM leases WHERE lease_id = %s", (lease_id,))

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
        rows = self._all("SELECT name FROM locks WHERE lease_id = %s AND held ORDER BY name", (lease_id,))
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
        return self._conn.execute(b"DELETE FROM lock_waiters WHERE waiter_id = %s", (waiter_id,)).rowcount > 0

    def queued_request(self, request_key: str) -> LockWaiter | None:
        # No index on request_id: the queue table holds only waiting calls, a few rows per lock.
        row = self._one(
            f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE request_id = %s FOR UPDATE", (request_key,)
        )
        return None if row is None else row_to_waiter(row)

    def take_over_waiter(self, waiter_id: str, new_waiter_id: str, deadline_us: int) -> None:
        self._conn.execute(
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


class SecondAnswer(RuntimeError):
    """A body tried to store a second answer for one request: a bug, answered INTERNAL."""


def _unavailable(error: BaseException) -> StoreUnavailable:
    if isinstance(error, pg_errors.DiskFull):
        return disk_full_error()
    if isinstance(error, psycopg_pool.PoolTimeout):
        return StoreUnavailable(
            "the database is unavailable: no connection within the call's deadline (the database "
            "is unreachable or every connection is busy); retry with the same request_id"
        )
    return StoreUnavailable(f"the database is unavailable: {error.__class__.__name__}")


def _wait(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


class PostgresStore:
    """`Store` on PostgreSQL. Open with `await PostgresStore.open(url)`; any number of replicas."""

    def __init__(
        self,
        url: str,
        *,
        history_versions: int = 10,
        request_id_retention_seconds: int = 24 * 3600,
        watch_history_revisions: int = 10_000,
        pool_size: int = 10,
    ) -> None:
        self._url = url
        self._history = history_versions
        self._answer_retention_us = request_id_retention_seconds * 1_000_000
        self._watch_history = watch_history_revisions
        self._target = describe_target(url)
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=5.0,
            reconnect_timeout=_RECONNECT_SECONDS,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
            check=psycopg_pool.ConnectionPool.check_connection,
        )
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="postgres")
        self._listeners: list[NoticeListener] = []
        self._clock_offset_us = 0
        self._pumped_revision = 0
        self._token_floor = 0  # set by `lockservice bump`, which runs with no replica: read at open
        self._pump_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._known_compacted = 0
        self._commit_observers: list[Callable[[int, float], None]] = []
        self._pruning: asyncio.Future[None] | None = None
        self._probe_now = asyncio.Event()
        self._availability = Outage(
            _log,
            started="database unreachable",
            ongoing="database still unreachable",
            ended="database reachable again",
            database=self._target,
        )
        self._disk_full = disk_full_outage(_log, self._target)
        self._listen_lost = Outage(
            _log,
            started="listen connection lost; reconnecting",
            ongoing="listen connection still lost",
            ended="listen connection restored",
            database=self._target,
        )
        self.page_token_secret = b""  # read at open

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, **options: Any) -> PostgresStore:
        quiet_pool_log()
        store = cls(url, **options)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(store._executor, store._open)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            await store.close()
            raise StoreUnavailable(
                f"cannot use PostgreSQL at {store._target}: {connection_cause(error)}"
            ) from None
        except StoreUnavailable:
            await store.close()
            raise
        store._tasks = [
            loop.create_task(store._listen(), name="postgres-listen"),
            loop.create_task(store._pump_events(), name="postgres-events"),
            loop.create_task(store._maintain(), name="postgres-maintenance"),
            loop.create_task(store._probe_availability(), name="postgres-probe"),
        ]
        return store

    def _open(self) -> None:
        await_database(self._url, self._target)
        self._pool.open(wait=True, timeout=10.0)
        with self._pool.connection() as conn:
            migrate(conn)
            self.page_token_secret = bytes(conn.execute(PAGE_TOKEN_SECRET_SQL.encode()).fetchone()[0])  # type: ignore[index]
            self._pumped_revision = conn.execute(
                b"SELECT value FROM meta WHERE name = 'revision'"
            ).fetchone()[0]  # type: ignore[index]
            floor = conn.execute(b"SELECT value FROM meta WHERE name = 'token_floor'").fetchone()
            self._token_floor = 0 if floor is None else int(floor[0])
        self._measure_clock()

    def _measure_clock(self) -> None:
        with self._pool.connection() as conn:
            before = time.time_ns() // 1000
            db_now: int = conn.execute(NOW_US_SQL.encode()).fetchone()[0]  # type: ignore[index]
            after = time.time_ns() // 1000
        self._clock_offset_us = db_now - (before + after) // 2

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._probe_now.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._pool.close)
        self._executor.shutdown(wait=True)

    def subscribe(self, listener: NoticeListener) -> None:
        self._listeners.append(listener)

    def watch_availability(self, listener: AvailabilityListener) -> None:
        """Calls `listener(False)` on the event loop when the database becomes unreachable, and
        `listener(True)` when it is back."""
        self._availability.subscribe(listener)

    async def _probe_availability(self) -> None:
        """Asks the database every few seconds (at once after a failed call) whether it is
        reachable, and reports the changes."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            self._probe_now.clear()
            cause = await loop.run_in_executor(None, probe, self._pool, self._url)
            if self._closed:
                return
            if cause is None:
                self._availability.ended()
            else:
                self._availability.failed(cause)
            pause = _PROBE_DOWN_SECONDS if self._availability.active else _PROBE_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._probe_now.wait(), pause)

    async def _in_executor(self, deadline: float, function: Callable[..., T], *args: Any) -> T:
        """Runs `function` on the store's threads; StoreUnavailable if none could start it before
        `deadline` (every thread busy waiting out an outage). A failure wakes the probe."""
        job: Future[T] = self._executor.submit(function, *args)
        running = asyncio.wrap_future(job)
        try:
            try:
                done, _ = await asyncio.wait({running}, timeout=_wait(deadline))
            except asyncio.CancelledError:
                running.cancel()  # the caller left: drop the outcome, as `await` would
                raise
            if not done and job.cancel():
                raise StoreUnavailable(
                    "the database is unavailable: no connection within the call's deadline; "
                    "retry with the same request_id"
                )
            return await running
        except StoreUnavailable:
            self._probe_now.set()
            raise

    def observe_commits(self, observer: Callable[[int, float], None]) -> None:
        """Calls `observer(1, seconds)` after every committed body (one transaction each)."""
        self._commit_observers.append(observer)

    async def stats(self) -> dict[str, int]:
        """What the store holds, for the metrics gauges (the whole database: every replica's)."""
        row = (
            await self._read(
                "SELECT (SELECT count(*) FROM leases WHERE expire_time_us > %s), "
                "(SELECT count(*) FROM locks WHERE held), (SELECT count(*) FROM lock_waiters), "
                "pg_database_size(current_database())",
                (self.now_us(),),
            )
        )[0]
        return {"leases": row[0], "locks_held": row[1], "waiters": row[2], "size_bytes": row[3]}

    def _publish(self, notices: Sequence[Notice]) -> None:
        for listener in self._listeners:
            listener(list(notices))

    # -- writes -----------------------------------------------------------------------------

    async def write(self, body: Callable[[WriteTxn], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        deadline = store_deadline()
        outcome, notices, revision = await self._in_executor(deadline, self._run_body, body, deadline)
        lock_notices = [n for n in notices if not isinstance(n, ChangeEvent)]
        if lock_notices:
            self._publish(lock_notices)  # local waiters now; remote ones through NOTIFY
        if revision is not None:
            self._pump_wake.set()
            margin = max(16, self._watch_history // 10)
            if revision - self._known_compacted > self._watch_history + margin and self._pruning is None:
                self._pruning = loop.run_in_executor(self._executor, self._prune)
                self._pruning.add_done_callback(self._pruned)
        return outcome  # type: ignore[no-any-return]

    def _run_body(
        self, body: Callable[[WriteTxn], Any], deadline: float
    ) -> tuple[Any, list[Notice], int | None]:
        started = time.perf_counter()
        for attempt in range(_MAX_ATTEMPTS):
            if attempt and time.monotonic() >= deadline:
                break
            try:
                with self._pool.connection(timeout=_wait(deadline)) as conn, conn.transaction():
                    now_us: int = conn.execute(NOW_US_SQL.encode()).fetchone()[0]  # type: ignore[index]
                    txn = _PostgresTxn(conn, now_us, self._history, self._token_floor)
                    outcome = body(txn)
                    for notice in txn.notices:
                        if isinstance(notice, LockGranted | WaiterFailed):
                            conn.execute(
                                b"SELECT pg_notify(%s, %s)", (_LOCKS_CHANNEL, _encode_notice(notice))
                            )
                    if txn.revision is not None:
                        conn.execute(b"SELECT pg_notify(%s, %s)", (_EVENTS_CHANNEL, str(txn.revision)))
                for observer in self._commit_observers:
                    observer(1, time.perf_counter() - started)
                self._disk_full.ended()
                return outcome, txn.notices, txn.revision
            except LockserviceError:
                raise
            except _RETRYABLE as error:
                if isinstance(error, pg_errors.UniqueViolation) and error.diag.table_name == _ANSWERS_TABLE:
                    raise SecondAnswer(
                        f"a second answer for one request: {error.diag.message_detail}"
                    ) from error
                time.sleep(min(0.05, 0.001 * 2**attempt) * random.random())
            except _CONNECTION_ERRORS as error:
                if isinstance(error, pg_errors.DiskFull):
                    self._disk_full.failed(connection_cause(error))
                raise _unavailable(error) from None
            except psycopg.errors.AdminShutdown as error:
                raise _unavailable(error) from None
        raise StoreUnavailable("the write could not complete in time under contention; retry")

    # -- change and notice delivery ----------------------------------------------------------

    async def _listen(self) -> None:
        """Relays NOTIFY: lock notices to listeners, event revisions to the pump. Reconnects."""
        retry = _LISTEN_RETRY_SECONDS[0]
        while not self._closed:
            try:
                aconn = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
                )
                async with aconn:
                    await aconn.execute(f"LISTEN {_EVENTS_CHANNEL}".encode())
                    await aconn.execute(f"LISTEN {_LOCKS_CHANNEL}".encode())
                    self._listen_lost.ended()
                    retry = _LISTEN_RETRY_SECONDS[0]
                    self._pump_wake.set()  # catch up on anything committed while disconnected
                    async for notify in aconn.notifies():
                        if notify.channel == _LOCKS_CHANNEL:
                            self._publish([_decode_notice(notify.payload)])
                        else:
                            self._pump_wake.set()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as error:
                self._listen_lost.failed(connection_cause(error))
                self._probe_now.set()
                await asyncio.sleep(retry)
                retry = min(retry * 2, _LISTEN_RETRY_SECONDS[1])

    async def _pump_events(self) -> None:
        """Publishes committed events in revision order, whichever replica wrote them."""
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pump_wake.wait(), 1.0)
            self._pump_wake.clear()
            try:
                while True:
                    events = await self.events_after(self._pumped_revision, "", True, _PUMP_PAGE)
                    if not events:
                        break
                    self._pumped_revision = events[-1].revision
                    self._publish(list(events))
                    if len(events) < _PUMP_PAGE:
                        break
            except asyncio.CancelledError:
                raise
            except LockserviceError:
                await asyncio.sleep(0.5)

    async def _maintain(self) -> None:
        """Every few seconds: re-measure the clock offset, drop expired answers and old events."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(_MAINTENANCE_SECONDS)
            try:
                await loop.run_in_executor(self._executor, self._measure_clock)
                await loop.run_in_executor(self._executor, self._prune)
            except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
                if not self._availability.active:  # else the outage is reported already
                    _log.warning("maintenance failed", error=error.__class__.__name__)

    def _pruned(self, future: asyncio.Future[None]) -> None:
        self._pruning = None
        if not future.cancelled() and future.exception() is not None and not self._availability.active:
            _log.warning("pruning failed", error=future.exception().__class__.__name__)

    def _prune(self) -> None:
        """Drops expired request answers and events beyond the watch window."""
        with self._pool.connection() as conn, conn.transaction():
            now_us: int = conn.execute(NOW_US_SQL.encode()).fetchone()[0]  # type: ignore[index]
            conn.execute(
                b"DELETE FROM request_answers WHERE created_us < %s", (now_us - self._answer_retention_us,)
            )
            revision: int = conn.execute(b"SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]  # type: ignore[index]
            horizon = revision - self._watch_history
            if horizon > 0:
                conn.execute(b"DELETE FROM events WHERE revision <= %s", (horizon,))
                conn.execute(
                    b"UPDATE meta SET value = GREATEST(value, %s) WHERE name = 'compacted_revision'",
                    (horizon,),
                )
                self._known_compacted = max(self._known_compacted, horizon)

    # -- reads ------------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...], deadline: float) -> list[Any]:
        try:
            with self._pool.connection(timeout=_wait(deadline)) as conn:
                return conn.execute(sql.encode(), params).fetchall()
        except _CONNECTION_ERRORS as error:
            raise _unavailable(error) from None

    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        deadline = store_deadline()
        return await self._in_executor(deadline, self._query, sql, params, deadline)

    async def get(self, key: str) -> Resource | None:
        rows = await self._read(f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE key = %s", (key,))
        return row_to_resource(rows[0]) if rows else None

    def peek(self, key: str) -> tuple[bool, Resource | None]:
        return False, None  # other replicas write too: only the database knows

    async def answered(self, request_key: str) -> bool:
        return bool(await self._read("SELECT 1 FROM request_answers WHERE request_id = %s", (request_key,)))

    async def get_version(self, key: str, create_revision: int, version: int) -> Resource | None:
        rows = await self._read(
            f"SELECT {RESOURCE_COLUMNS} FROM resource_versions "
            "WHERE key = %s AND version = %s AND create_revision = %s",
            (key, version, create_revision),
        )
        return row_to_resource(rows[0]) if rows else None

    async def list_resources(
        self, prefix: str, start_after: str, limit: int, *, with_values: bool, max_bytes: int = 0
    ) -> list[Resource]:
        columns = RESOURCE_COLUMNS if with_values else _META_COLUMNS
        return await resource_page(
            self._read, "%s", columns, prefix, start_after, limit, max_bytes if with_values else 0
        )

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
        columns = RESOURCE_COLUMNS if with_values else _META_COLUMNS
        return await version_page(
            self._read,
            "%s",
            columns,
            key,
            create_revision,
            below_version,
            limit,
            max_bytes if with_values else 0,
        )

    async def current_revision(self) -> int:
        revision: int = (await self._read("SELECT value FROM meta WHERE name = 'revision'"))[0][0]
        return revision

    async def compacted_revision(self) -> int:
        compacted: int = (await self._read("SELECT value FROM meta WHERE name = 'compacted_revision'"))[0][0]
        return compacted

    async def events_after(
        self, revision: int, key: str, prefix: bool, limit: int, max_bytes: int = 0
    ) -> list[ChangeEvent]:
        return await event_page(self._read, "%s", revision, key, prefix, limit, max_bytes)

    async def get_lease(self, lease_id: str) -> Lease | None:
        rows = await self._read(f"SELECT {LEASE_COLUMNS} FROM leases WHERE lease_id = %s", (lease_id,))
        return row_to_lease(rows[0]) if rows else None

    async def lease_lock_names(self, lease_id: str) -> list[str]:
        rows = await self._read(
            "SELECT name FROM locks WHERE lease_id = %s AND held ORDER BY name", (lease_id,)
        )
        return [row[0] for row in rows]

    async def lease_resource_keys(self, lease_id: str) -> list[str]:
        rows = await self._read("SELECT key FROM resources WHERE lease_id = %s ORDER BY key", (lease_id,))
        return [row[0] for row in rows]

    async def get_lock(self, name: str) -> LockState | None:
        rows = await self._read(f"SELECT {LOCK_COLUMNS} FROM locks WHERE name = %s", (name,))
        return row_to_lock(rows[0]) if rows else None

    async def waiter_count(self, name: str) -> int:
        count: int = (await self._read("SELECT count(*) FROM lock_waiters WHERE name = %s", (name,)))[0][0]
        return count

    async def next_deadline(self) -> int | None:
        rows = await self._read(
            "SELECT min(t) FROM (SELECT min(expire_time_us) AS t FROM leases UNION ALL "
            "SELECT min(available_time_us) FROM locks WHERE NOT held AND available_time_us > 0 "
            "AND EXISTS (SELECT 1 FROM lock_waiters w WHERE w.name = locks.name)) AS deadlines"
        )
        deadline: int | None = rows[0][0]
        return deadline

    def now_us(self) -> int:
        """The database clock, from the local clock and an offset re-measured every few seconds."""
        return time.time_ns() // 1000 + self._clock_offset_us
