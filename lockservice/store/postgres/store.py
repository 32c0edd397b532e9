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
(its caller's deadline, at most 5 s), then answers StoreUnavailable; so does a call whose
statement the database has not answered by then (a commit waiting for a lost synchronous
standby), which is left to finish on its thread, never cancelled. A probe (`SELECT 1` through
the pool every 2 s, and a direct connection when the pool has none to give, which tells an
unreachable database from a busy pool) decides whether the database is reachable; the change is
logged once (then once every 30 s while it lasts) and told to `watch_availability` listeners
(gRPC health). The pool's own reconnection messages are silenced: the probe reports the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import structlog
from psycopg import errors as pg_errors

from lockservice.deadlines import store_deadline
from lockservice.errors import LockserviceError, StoreUnavailable
from lockservice.model import ChangeEvent
from lockservice.store.base import (
    AvailabilityListener,
    Capabilities,
    CommitObserver,
    Notice,
    NoticeListener,
    WriteTxn,
)
from lockservice.store.outage import Outage, disk_full_error, disk_full_outage
from lockservice.store.postgres.connections import (
    CONNECT_TIMEOUT_SECONDS,
    NOW_US_SQL,
    await_database,
    connection_cause,
    dead_peer_options,
    describe_target,
    probe,
    quiet_pool_log,
)
from lockservice.store.postgres.notifications import Relay, announce
from lockservice.store.postgres.pruning import prune
from lockservice.store.postgres.reads import PostgresReads
from lockservice.store.postgres.schema import migrate
from lockservice.store.postgres.txn import PostgresTxn
from lockservice.store.rows import PAGE_TOKEN_SECRET_SQL
from lockservice.store.sql import POSTGRES, events_overrun

__all__ = ["PostgresStore", "SecondAnswer"]

_log = structlog.get_logger("lockservice.store.postgres")

T = TypeVar("T")

_MAX_ATTEMPTS = 30
# A unique violation is retryable (two bodies inserted one new row: the loser re-runs and sees
# the winner's), except on request_answers: attempts of one request are serialized by
# `claim_request`, so a second answer is a bug, and re-running the body cannot cure it.
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.UniqueViolation)
_ANSWERS_TABLE = "request_answers"
_MAINTENANCE_SECONDS = 10.0
# The pool gives up re-connecting after this long, and tries again when a call asks for a
# connection: recovery is noticed at once, never after the pool's own backoff (up to minutes).
_RECONNECT_SECONDS = 2.0
# The availability probe: how often while reachable, and while not; its connection wait.
_PROBE_SECONDS = 2.0
_PROBE_DOWN_SECONDS = 1.0
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)


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


class PostgresStore(PostgresReads):
    """`Store` on PostgreSQL. Open with `await PostgresStore.open(url)`; any number of replicas.

    This module opens and closes the pool, runs bodies (with re-runs) and reads on its threads,
    and probes availability; a body's transaction is `txn`, NOTIFY and the event pump
    `notifications`, the reads of its own `reads`, pruning `pruning`."""

    def __init__(
        self,
        url: str,
        *,
        history_versions: int = 10,
        request_id_retention_seconds: int = 24 * 3600,
        watch_history_revisions: int = 10_000,
        pool_size: int = 10,
    ) -> None:
        self._dialect = POSTGRES
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
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS, **dead_peer_options(url)},
            check=psycopg_pool.ConnectionPool.check_connection,
        )
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="postgres")
        self._listeners: list[NoticeListener] = []
        self._clock_offset_us = 0
        self._token_floor = 0  # set by `lockservice bump`, which runs with no replica: read at open
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._known_compacted = 0
        self._commit_observers: list[CommitObserver] = []
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
        self._relay = Relay(url, self._target, self._publish, self.events_after, self._probe_now.set)
        self.page_token_secret = b""  # read at open
        self.capabilities = Capabilities(
            watch_availability=self.watch_availability,
            observe_commits=self.observe_commits,
            stats=self.stats,
        )

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
            loop.create_task(store._relay.listen(), name="postgres-listen"),
            loop.create_task(store._relay.pump(), name="postgres-events"),
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
            self._relay.pumped_revision = conn.execute(
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
        self._relay.closed = True
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
        """Runs `function` on the store's threads; StoreUnavailable if it has not finished by
        `deadline`: not started (every thread busy waiting out an outage), or started and still
        waiting on the database (then left to finish on its thread: its outcome is dropped). A
        failure wakes the probe."""
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
            if not done:
                # Started, and the database has not answered: a commit waiting for a synchronous
                # standby that is gone, or a row lock held by such a commit. Cancelling would
                # make a commit visible without its standby copy, so it keeps waiting on its
                # thread; the caller is answered now, the outcome unknown to it.
                running.cancel()
                raise StoreUnavailable(
                    "the database did not answer within the call's deadline (a write may still be "
                    "applied); retry with the same request_id"
                )
            return await running
        except StoreUnavailable:
            self._probe_now.set()
            raise

    def observe_commits(self, observer: CommitObserver) -> None:
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
            self._relay.wake()
            if events_overrun(revision, self._known_compacted, self._watch_history) and self._pruning is None:
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
                with self._pool.connection(timeout=_wait(deadline)) as conn:
                    txn = PostgresTxn.begin(conn, self._history, self._token_floor)
                    try:
                        outcome = body(txn)
                        announce(txn, txn.notices, txn.revision)
                        txn.commit()
                    except BaseException:
                        txn.rollback()
                        raise
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

    # -- maintenance --------------------------------------------------------------------------

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
        """Drops expired request answers and events beyond the watch window (`pruning`)."""
        compacted = prune(self._pool, self._answer_retention_us, self._watch_history)
        self._known_compacted = max(self._known_compacted, compacted)

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

    async def _read_rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return await self._read(sql, params)

    def now_us(self) -> int:
        """The database clock, from the local clock and an offset re-measured every few seconds."""
        return time.time_ns() // 1000 + self._clock_offset_us
