"""The embedded SQLite store: one file, WAL, durable commits, one writer with group commit.

Writes are funnelled through one thread that owns the only writing connection. It takes every
body queued while the previous commit was syncing, runs each under its own savepoint (a body
that raises rolls back alone, its neighbours commit), and commits them with one fsync. So
concurrency buys throughput, and no caller ever sees `database is locked`.

Reads run on the caller's thread on a separate connection: in WAL mode they never wait for the
writer and always see the last committed state.

Lock queues are the exception: a TEMP table of the writer's connection (no fsync to queue or
leave a queue); readers see their lengths as of the last commit, kept by the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import structlog

from lockservice.errors import StoreUnavailable
from lockservice.model import ChangeEvent, EventType, Lease, LockState, LockWaiter, Resource
from lockservice.store.base import Notice, NoticeListener, StoredAnswer, WriteTxn
from lockservice.store.outage import Outage, disk_full_error, disk_full_outage
from lockservice.store.pages import event_page, resource_page, version_page
from lockservice.store.read_cache import ReadCache
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
from lockservice.store.sqlite_schema import migrate

__all__ = ["SqliteStore"]

_log = structlog.get_logger("lockservice.store.sqlite")

T = TypeVar("T")

_MAX_BATCH = 256
# Keys whose current state reads take from memory (about 400 bytes each with a 100-byte value).
_READ_CACHE_ENTRIES = 65_536
# The lock queues live in a TEMP table of the writer's connection: in memory, transactional
# (a body's savepoint undoes its queue changes with the rest), and never written to the WAL, so
# queueing costs no fsync. Waiters belong to calls of this process and end with it anyway.
_TEMP_WAITERS = (
    "PRAGMA temp_store = MEMORY",
    "CREATE TEMP TABLE lock_waiters (seq INTEGER PRIMARY KEY, waiter_id TEXT NOT NULL UNIQUE, "
    "name TEXT NOT NULL, holder TEXT NOT NULL, lease_id TEXT NOT NULL, ttl_seconds INTEGER NOT NULL, "
    "lock_delay_us INTEGER NOT NULL, request_id TEXT NOT NULL, fingerprint TEXT NOT NULL, "
    "deadline_us INTEGER NOT NULL)",
    "CREATE INDEX temp.lock_waiters_by_name ON lock_waiters (name, seq)",
    "CREATE INDEX temp.lock_waiters_by_lease ON lock_waiters (lease_id)",
    "CREATE INDEX temp.lock_waiters_by_request ON lock_waiters (request_id)",
)
_PRUNE_EVERY_SECONDS = 60.0
_PRUNE_BATCH_ROWS = 10_000

_META_COLUMNS = metadata_columns("x''")
_UPSERT_LEASE = (
    f"INSERT INTO leases ({LEASE_COLUMNS}) VALUES (?,?,?,?,?,?) ON CONFLICT (lease_id) DO UPDATE SET "
    + ", ".join(f"{name.strip()} = excluded.{name.strip()}" for name in LEASE_COLUMNS.split(",")[1:])
)

# What an operator should read for SQLite's result codes (extended codes share the prefix).
_SQLITE_CAUSES = {
    "SQLITE_NOTADB": "the file is not a SQLite database (garbage, or another kind of file)",
    "SQLITE_CORRUPT": "the database file is corrupt (damaged or truncated); restore it from a backup",
    "SQLITE_READONLY": "the file or its directory is read-only",
    "SQLITE_CANTOPEN": "the file cannot be opened or created (check the directory and its permissions)",
    "SQLITE_FULL": "the disk is full",
    "SQLITE_IOERR": "an I/O error (a failing or vanished disk?)",
    "SQLITE_PERM": "permission denied",
}
_STORAGE_FAILURES = (
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_NOMEM",
)
_OS_CAUSES = {
    errno.EROFS: "the file or its directory is read-only (a read-only file system)",
    errno.EACCES: "permission denied: the file or its directory is read-only to this user",
    errno.EPERM: "permission denied: the file or its directory is read-only to this user",
    errno.ENOSPC: "the disk is full",
}


def _error_name(error: sqlite3.Error) -> str:
    return getattr(error, "sqlite_errorname", "") or error.__class__.__name__


def _storage_failed(error: sqlite3.Error, conn: sqlite3.Connection) -> bool:
    """The disk or the file failed, not a statement (or SQLite ended the transaction): nothing
    in this transaction can commit."""
    return _error_name(error).startswith(_STORAGE_FAILURES) or not conn.in_transaction


def _cause(error: sqlite3.Error | OSError) -> str:
    """One line an operator can act on, with SQLite's code name for searching."""
    if isinstance(error, OSError):
        return _OS_CAUSES.get(error.errno or 0, error.strerror or str(error))
    name = _error_name(error)
    for prefix, text in _SQLITE_CAUSES.items():
        if name.startswith(prefix):
            return f"{text} ({name})"
    return f"{error} ({name})"


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class _Pending:
    body: Callable[[WriteTxn], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    outcome: Any = None
    error: BaseException | None = None
    notices: list[Notice] | None = None


class _SqliteTxn:
    """The `WriteTxn` handed to one body, on the writer's connection inside its savepoint."""

    __slots__ = (
        "_base_revision",
        "_conn",
        "_event_seq",
        "_history",
        "_revision",
        "notices",
        "now_us",
        "token_floor",
        "waiter_changes",
    )

    def __init__(
        self, conn: sqlite3.Connection, base_revision: int, now_us: int, history: int, token_floor: int
    ) -> None:
        self._conn = conn
        self._base_revision = base_revision
        self._revision = base_revision
        self._history = history
        self._event_seq = 0
        self.now_us = now_us
        self.token_floor = token_floor
        self.notices: list[Notice] = []
        # Queue length changes by lock name, published to the readers when the body commits.
        self.waiter_changes: dict[str, int] = {}

    def _record(self, type_: EventType, resource: Resource) -> None:
        if self._revision == self._base_revision:
            raise RuntimeError("a change needs a revision: call next_revision() first")
        self._conn.execute(
            f"INSERT INTO events (seq, {EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (self._event_seq, type_.value, self._revision, *resource_values(resource)),
        )
        self._event_seq += 1
        self.notices.append(ChangeEvent(type=type_, resource=resource, revision=self._revision))

    def get(self, key: str) -> Resource | None:
        row = self._conn.execute(f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE key = ?", (key,)).fetchone()
        return None if row is None else row_to_resource(row)

    def put(self, resource: Resource) -> None:
        values = resource_values(resource)
        self._conn.execute(
            f"INSERT OR REPLACE INTO resources ({RESOURCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", values
        )
        if resource.version == 1:
            # A new incarnation: versions of an earlier one must not be mistaken for its own.
            self._conn.execute("DELETE FROM resource_versions WHERE key = ?", (resource.key,))
        self._conn.execute(
            f"INSERT OR REPLACE INTO resource_versions ({RESOURCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
            values,
        )
        oldest_kept = resource.version - self._history + 1
        if oldest_kept > 1:
            self._conn.execute(
                "DELETE FROM resource_versions WHERE key = ? AND version < ?", (resource.key, oldest_kept)
            )
        self._record(EventType.PUT, resource)

    def delete(self, key: str, *, expired: bool = False) -> None:
        last = self.get(key)
        if last is None:
            return
        self._conn.execute("DELETE FROM resources WHERE key = ?", (key,))
        self._conn.execute("DELETE FROM resource_versions WHERE key = ?", (key,))
        self._record(EventType.EXPIRE if expired else EventType.DELETE, last)

    def current_revision(self) -> int:
        return self._revision

    def next_revision(self) -> int:
        if self._revision == self._base_revision:
            self._revision += 1
        return self._revision

    def claim_request(self, request_key: str) -> None:
        pass  # one writer runs one body at a time: every body has every key to itself

    def get_answer(self, request_key: str) -> StoredAnswer | None:
        row = self._conn.execute(
            "SELECT fingerprint, answer FROM request_answers WHERE request_id = ?", (request_key,)
        ).fetchone()
        return None if row is None else StoredAnswer(fingerprint=row[0], answer=row[1])

    def save_answer(self, request_key: str, fingerprint: str, answer: str) -> None:
        self._conn.execute(
            "INSERT INTO request_answers (request_id, fingerprint, answer, created_us) VALUES (?,?,?,?)",
            (request_key, fingerprint, answer, self.now_us),
        )

    def get_lease(self, lease_id: str) -> Lease | None:
        row = self._conn.execute(
            f"SELECT {LEASE_COLUMNS} FROM leases WHERE lease_id = ?", (lease_id,)
        ).fetchone()
        return None if row is None else row_to_lease(row)

    def put_lease(self, lease: Lease) -> None:
        # An upsert, not INSERT OR REPLACE: the lease_rows count's insert trigger fires for new
        # leases only (a replace would count a refresh as one more).
        self._conn.execute(_UPSERT_LEASE, lease_values(lease))

    def lease_rows(self) -> int:
        rows: int = self._conn.execute("SELECT value FROM meta WHERE name = 'lease_rows'").fetchone()[0]
        return rows

    def delete_lease(self, lease_id: str) -> None:
        self._conn.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))

    def live_lease_count(self, now_us: int) -> int:
        count: int = self._conn.execute(
            "SELECT count(*) FROM leases WHERE expire_time_us > ?", (now_us,)
        ).fetchone()[0]
        return count

    def expired_leases(self, now_us: int, limit: int) -> list[Lease]:
        rows = self._conn.execute(
            f"SELECT {LEASE_COLUMNS} FROM leases WHERE expire_time_us <= ? ORDER BY expire_time_us LIMIT ?",
            (now_us, limit),
        ).fetchall()
        return [row_to_lease(row) for row in rows]

    def lease_lock_names(self, lease_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT name FROM locks WHERE lease_id = ? AND held = 1 ORDER BY name", (lease_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def lease_resource_keys(self, lease_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT key FROM resources WHERE lease_id = ? ORDER BY key", (lease_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def get_lock(self, name: str) -> LockState | None:
        row = self._conn.execute(f"SELECT {LOCK_COLUMNS} FROM locks WHERE name = ?", (name,)).fetchone()
        return None if row is None else row_to_lock(row)

    def put_lock(self, state: LockState) -> None:
        self._conn.execute(
            f"INSERT OR REPLACE INTO locks ({LOCK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", lock_values(state)
        )

    def lock_waiters(self, name: str, limit: int | None = None) -> list[LockWaiter]:
        rows = self._conn.execute(
            f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE name = ? ORDER BY seq LIMIT ?",
            (name, -1 if limit is None else limit),
        ).fetchall()
        return [row_to_waiter(row) for row in rows]

    def count_waiters(self, name: str) -> int:
        count: int = self._conn.execute(
            "SELECT count(*) FROM lock_waiters WHERE name = ?", (name,)
        ).fetchone()[0]
        return count

    def count_leaseless_waiters(self) -> int:
        count: int = self._conn.execute("SELECT count(*) FROM lock_waiters WHERE lease_id = ''").fetchone()[0]
        return count

    def _waiter_change(self, name: str, change: int) -> None:
        self.waiter_changes[name] = self.waiter_changes.get(name, 0) + change

    def add_waiter(self, waiter: LockWaiter) -> LockWaiter:
        cursor = self._conn.execute(
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
        row = self._conn.execute(
            "DELETE FROM lock_waiters WHERE waiter_id = ? RETURNING name", (waiter_id,)
        ).fetchone()
        if row is None:
            return False
        self._waiter_change(row[0], -1)
        return True

    def queued_request(self, request_key: str) -> LockWaiter | None:
        row = self._conn.execute(
            f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE request_id = ?", (request_key,)
        ).fetchone()
        return None if row is None else row_to_waiter(row)

    def take_over_waiter(self, waiter_id: str, new_waiter_id: str, deadline_us: int) -> None:
        self._conn.execute(
            "UPDATE lock_waiters SET waiter_id = ?, deadline_us = ? WHERE waiter_id = ?",
            (new_waiter_id, deadline_us, waiter_id),
        )

    def waiters_under_lease(self, lease_id: str) -> list[LockWaiter]:
        rows = self._conn.execute(
            f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE lease_id = ? ORDER BY seq", (lease_id,)
        ).fetchall()
        return [row_to_waiter(row) for row in rows]

    def delayed_locks_with_waiters(self, now_us: int, limit: int) -> list[LockState]:
        rows = self._conn.execute(
            f"SELECT {LOCK_COLUMNS} FROM locks WHERE held = 0 AND available_time_us <= ? "
            "AND EXISTS (SELECT 1 FROM lock_waiters w WHERE w.name = locks.name) ORDER BY name LIMIT ?",
            (now_us, limit),
        ).fetchall()
        return [row_to_lock(row) for row in rows]

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)


class SqliteStore:
    """`Store` on one SQLite file. Open with `await SqliteStore.open(path)`; one process per file."""

    def __init__(
        self,
        path: str,
        *,
        history_versions: int = 10,
        request_id_retention_seconds: int = 24 * 3600,
        watch_history_revisions: int = 10_000,
        durable: bool = True,
        read_cache_bytes: int = 64 * 1024 * 1024,
        page_cache_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        """`read_cache_bytes` bounds the values kept in memory for reads (`ReadCache`);
        `page_cache_bytes` is SQLite's page cache of each of the store's two connections."""
        self._path = path
        self._watch_history = watch_history_revisions
        self._listeners: list[NoticeListener] = []
        self._compacted = 0
        self._history = history_versions
        self._answer_retention_us = request_id_retention_seconds * 1_000_000
        self._durable = durable
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock_file: int | None = None
        self._revision = 0
        self._token_floor = 0  # set by a restore, which runs with no server: read once at open
        self._closed = False
        self._last_prune = 0.0
        # Written by the writer thread only; read for metrics and tests.
        self.commits = 0
        self.committed_bodies = 0
        self._commit_observers: list[Callable[[int, float], None]] = []
        # Queued waiters by lock name, as of the last commit. Replaced whole by the writer, never
        # changed in place, so readers on the loop's thread can use it without a lock.
        self._waiter_counts: dict[str, int] = {}
        self._cache = ReadCache(_READ_CACHE_ENTRIES, read_cache_bytes)
        self._page_cache_kib = max(page_cache_bytes // 1024, 1024)
        self._compacted_in_writer = 0
        self._compacted_published = 0
        # Failed commits, logged at error without flooding the log (one line, then one every 30 s).
        self._disk_full = disk_full_outage(_log, path)
        self._commit_failing = Outage(
            _log,
            started="the database could not commit",
            ongoing="the database still cannot commit",
            ended="writes succeed again",
            level="error",
            database=path,
        )
        self.page_token_secret = b""  # read at open

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str, **options: Any) -> SqliteStore:
        store = cls(path, **options)
        await asyncio.get_running_loop().run_in_executor(None, store._open)
        return store

    def _open(self) -> None:
        """Opens the file; any failure is a StoreUnavailable naming the file and the cause."""
        directory = os.path.dirname(os.path.abspath(self._path))
        if not os.path.isdir(directory):
            raise StoreUnavailable(f"the directory of the database does not exist: {directory}")
        try:
            self._open_file()
        except (sqlite3.Error, OSError) as error:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            if self._lock_file is not None:
                os.close(self._lock_file)
                self._lock_file = None
            raise StoreUnavailable(f"cannot open the database {self._path}: {_cause(error)}") from None

    def _open_file(self) -> None:
        self._lock_file = os.open(self._path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_file)
            self._lock_file = None
            raise StoreUnavailable(
                f"the database {self._path} is in use by another lockservice process"
            ) from None
        conn = self._connect()
        try:
            migrate(conn)
            self._revision = conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]
            self._compacted = conn.execute(
                "SELECT value FROM meta WHERE name = 'compacted_revision'"
            ).fetchone()[0]
            floor = conn.execute("SELECT value FROM meta WHERE name = 'token_floor'").fetchone()
            self._token_floor = 0 if floor is None else floor[0]
            self.page_token_secret = conn.execute(PAGE_TOKEN_SECRET_SQL).fetchone()[0]
            # Waiters belong to calls of the previous process, which are gone with it.
            conn.execute("DELETE FROM lock_waiters")
        finally:
            conn.close()
        self._reader = self._connect()
        # The writer's connection is made here, so a file it cannot open fails the start.
        writer = self._connect()
        for statement in _TEMP_WAITERS:
            writer.execute(statement)
        self._compacted_in_writer = self._compacted
        self._compacted_published = self._compacted
        self._writer = threading.Thread(
            target=self._write_loop, args=(writer,), name="sqlite-writer", daemon=True
        )
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL syncs the WAL at every commit: an acknowledged write survives power loss.
        conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute(f"PRAGMA cache_size = -{self._page_cache_kib}")
        return conn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        if self._reader is not None:
            self._reader.close()
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    # -- writes -----------------------------------------------------------------------------

    async def write(self, body: Callable[[WriteTxn], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(body, future, loop))
        return await future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        revision = self._revision
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            revision = self._commit_batch(conn, batch, revision)
            self._resolve(batch, revision)
            if stop:
                break
        conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Pending], revision: int) -> int:
        started = time.perf_counter()
        start_revision = revision
        start_compacted = self._compacted_in_writer
        now = _now_us()
        waiter_changes: dict[str, int] = {}
        try:
            conn.execute("BEGIN IMMEDIATE")
            compacted = self._prune(conn, now, revision)
            for pending in batch:
                conn.execute("SAVEPOINT body")
                txn = _SqliteTxn(conn, revision, now, self._history, self._token_floor)
                try:
                    pending.outcome = pending.body(txn)
                except BaseException as error:
                    if isinstance(error, sqlite3.Error) and _storage_failed(error, conn):
                        raise  # the storage failed, not the body: the whole batch fails with it
                    conn.execute("ROLLBACK TO body")
                    pending.error = error
                else:
                    revision = txn.current_revision()
                    pending.notices = txn.notices
                    for name, change in txn.waiter_changes.items():
                        waiter_changes[name] = waiter_changes.get(name, 0) + change
                conn.execute("RELEASE body")
            if revision != start_revision:
                conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
            conn.execute("COMMIT")
            if waiter_changes:
                self._publish_waiter_counts(waiter_changes)
            self.commits += 1
            self.committed_bodies += len(batch)
            for observer in self._commit_observers:
                observer(len(batch), time.perf_counter() - started)
            self._compacted_published = compacted
            self._disk_full.ended()
            self._commit_failing.ended()
            return revision
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._compacted_in_writer = start_compacted  # its pruning was rolled back too
            failure = self._commit_failure(error)
            for pending in batch:
                pending.outcome = None
                pending.error = failure
                pending.notices = None
            return start_revision

    def _commit_failure(self, error: sqlite3.Error) -> StoreUnavailable:
        """Logs a failed commit (rate-limited) and says what the callers get."""
        name = _error_name(error)
        if name == "SQLITE_FULL":
            self._disk_full.failed(_cause(error))
            return disk_full_error()
        self._commit_failing.failed(_cause(error))
        return StoreUnavailable(f"the database could not commit: {_cause(error)}", metadata={"cause": name})

    def _publish_waiter_counts(self, changes: dict[str, int]) -> None:
        counts = dict(self._waiter_counts)
        for name, change in changes.items():
            count = counts.get(name, 0) + change
            if count > 0:
                counts[name] = count
            else:
                counts.pop(name, None)
        self._waiter_counts = counts

    def _prune(self, conn: sqlite3.Connection, now_us: int, revision: int) -> int:
        """Drops expired request answers (every minute) and events beyond the watch window (once
        the window is overrun by a margin, so the cost is amortised); returns the compacted
        revision. Bounded per call so a commit never stalls on a large backlog."""
        if time.monotonic() - self._last_prune >= _PRUNE_EVERY_SECONDS:
            self._last_prune = time.monotonic()
            conn.execute(
                "DELETE FROM request_answers WHERE rowid IN "
                "(SELECT rowid FROM request_answers WHERE created_us < ? LIMIT ?)",
                (now_us - self._answer_retention_us, _PRUNE_BATCH_ROWS),
            )
        margin = max(16, self._watch_history // 10)
        if revision - self._compacted_in_writer > self._watch_history + margin:
            horizon = revision - self._watch_history
            row = conn.execute(
                "SELECT max(revision) FROM (SELECT revision FROM events WHERE revision <= ? "
                "ORDER BY revision LIMIT ?)",
                (horizon, _PRUNE_BATCH_ROWS),
            ).fetchone()
            compacted = horizon if row[0] is None else min(horizon, row[0])
            conn.execute("DELETE FROM events WHERE revision <= ?", (compacted,))
            conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted_revision'", (compacted,))
            self._compacted_in_writer = compacted
        return self._compacted_in_writer

    def _resolve(self, batch: list[_Pending], revision: int) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        for pending in batch:
            by_loop.setdefault(pending.loop, []).append(pending)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed while we committed
                loop.call_soon_threadsafe(self._settle, items, revision)

    def _settle(self, items: list[_Pending], revision: int) -> None:
        self._revision = max(self._revision, revision)
        self._compacted = max(self._compacted, self._compacted_published)
        notices = [notice for pending in items if pending.notices for notice in pending.notices]
        for notice in notices:
            if isinstance(notice, ChangeEvent):
                resource = notice.resource if notice.type is EventType.PUT else None
                self._cache.offer(notice.resource.key, notice.revision, resource)
        # Answers first: their callers are woken before the watchers the listeners wake, so an
        # acknowledgement never queues behind a fan-out to thousands of watchers. Nothing runs
        # in between: every listener has its notices before any woken caller takes a step.
        for pending in items:
            if pending.future.done():
                continue
            if pending.error is not None:
                pending.future.set_exception(pending.error)
            else:
                pending.future.set_result(pending.outcome)
        if notices:
            for listener in self._listeners:
                listener(notices)

    def subscribe(self, listener: NoticeListener) -> None:
        self._listeners.append(listener)

    def observe_commits(self, observer: Callable[[int, float], None]) -> None:
        """Calls `observer(batch_size, seconds)` on the writer thread after every commit."""
        self._commit_observers.append(observer)

    async def stats(self) -> dict[str, int]:
        """What the store holds, for the metrics gauges."""
        now = _now_us()
        leases = self._read("SELECT count(*) FROM leases WHERE expire_time_us > ?", (now,))[0][0]
        held = self._read("SELECT count(*) FROM locks WHERE held = 1", ())[0][0]
        waiters = sum(self._waiter_counts.values())
        pages = self._read("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()", ())[
            0
        ][0]
        wal = os.path.getsize(self._path + "-wal") if os.path.exists(self._path + "-wal") else 0
        return {"leases": leases, "locks_held": held, "waiters": waiters, "size_bytes": pages + wal}

    # -- reads ------------------------------------------------------------------------------

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self._reader is None or self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the database could not be read: {error.__class__.__name__}") from None

    async def get(self, key: str) -> Resource | None:
        known, cached = self._cache.lookup(key)
        if known:
            return cached
        rows = self._read(f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE key = ?", (key,))
        if not rows:
            return None
        resource = row_to_resource(rows[0])
        self._cache.offer(key, resource.mod_revision, resource)
        return resource

    def peek(self, key: str) -> tuple[bool, Resource | None]:
        return self._cache.lookup(key)

    async def answered(self, request_key: str) -> bool:
        return bool(self._read("SELECT 1 FROM request_answers WHERE request_id = ?", (request_key,)))

    async def get_version(self, key: str, create_revision: int, version: int) -> Resource | None:
        rows = self._read(
            f"SELECT {RESOURCE_COLUMNS} FROM resource_versions "
            "WHERE key = ? AND version = ? AND create_revision = ?",
            (key, version, create_revision),
        )
        return row_to_resource(rows[0]) if rows else None

    async def _read_async(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self._read(sql, params)

    async def list_resources(
        self, prefix: str, start_after: str, limit: int, *, with_values: bool, max_bytes: int = 0
    ) -> list[Resource]:
        columns = RESOURCE_COLUMNS if with_values else _META_COLUMNS
        return await resource_page(
            self._read_async, "?", columns, prefix, start_after, limit, max_bytes if with_values else 0
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
            self._read_async,
            "?",
            columns,
            key,
            create_revision,
            below_version,
            limit,
            max_bytes if with_values else 0,
        )

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    async def events_after(
        self, revision: int, key: str, prefix: bool, limit: int, max_bytes: int = 0
    ) -> list[ChangeEvent]:
        return await event_page(self._read_async, "?", revision, key, prefix, limit, max_bytes)

    async def get_lease(self, lease_id: str) -> Lease | None:
        rows = self._read(f"SELECT {LEASE_COLUMNS} FROM leases WHERE lease_id = ?", (lease_id,))
        return row_to_lease(rows[0]) if rows else None

    async def lease_lock_names(self, lease_id: str) -> list[str]:
        rows = self._read("SELECT name FROM locks WHERE lease_id = ? AND held = 1 ORDER BY name", (lease_id,))
        return [row[0] for row in rows]

    async def lease_resource_keys(self, lease_id: str) -> list[str]:
        rows = self._read("SELECT key FROM resources WHERE lease_id = ? ORDER BY key", (lease_id,))
        return [row[0] for row in rows]

    async def get_lock(self, name: str) -> LockState | None:
        rows = self._read(f"SELECT {LOCK_COLUMNS} FROM locks WHERE name = ?", (name,))
        return row_to_lock(rows[0]) if rows else None

    async def waiter_count(self, name: str) -> int:
        return self._waiter_counts.get(name, 0)

    async def next_deadline(self) -> int | None:
        deadlines = [self._read("SELECT min(expire_time_us) FROM leases", ())[0][0]]
        queued = self._waiter_counts
        if queued:
            # The ends of lock-delays that waiters wait out.
            deadlines.append(
                self._read(
                    "SELECT min(available_time_us) FROM locks WHERE name IN (SELECT value FROM json_each(?)) "
                    "AND held = 0 AND available_time_us > 0",
                    (json.dumps(list(queued)),),
                )[0][0]
            )
        present = [deadline for deadline in deadlines if deadline is not None]
        return min(present) if present else None

    def now_us(self) -> int:
        return _now_us()
