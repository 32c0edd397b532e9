"""The embedded SQLite store: one file, WAL, durable commits, one writer with group commit.

Writes are funnelled through one thread that owns the only writing connection. It takes every
body queued while the previous commit was syncing, runs each under its own savepoint (a body
that raises rolls back alone, its neighbours commit), and commits them with one fsync. So
concurrency buys throughput, and no caller ever sees `database is locked`.

Reads run on the caller's thread on a separate connection: in WAL mode they never wait for the
writer and always see the last committed state.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lockservice.errors import StoreUnavailable
from lockservice.model import Resource
from lockservice.store.base import StoredAnswer, WriteTxn
from lockservice.store.sqlite_schema import migrate

__all__ = ["SqliteStore"]

T = TypeVar("T")

_MAX_BATCH = 256
_PRUNE_EVERY_SECONDS = 60.0
_PRUNE_BATCH_ROWS = 10_000

_RESOURCE_COLUMNS = (
    "key, value, content_type, version, create_revision, mod_revision, create_time_us, "
    "update_time_us, lease_id"
)
_META_COLUMNS = (
    "key, x'' AS value, content_type, version, create_revision, mod_revision, create_time_us, "
    "update_time_us, lease_id"
)


def _now_us() -> int:
    return time.time_ns() // 1000


def _row_to_resource(row: Any) -> Resource:
    return Resource(
        key=row[0],
        value=bytes(row[1]),
        content_type=row[2],
        version=row[3],
        create_revision=row[4],
        mod_revision=row[5],
        create_time_us=row[6],
        update_time_us=row[7],
        lease_id=row[8],
    )


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound).

    Keys are ASCII (the key syntax forbids the rest), so incrementing the last character works.
    """
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(slots=True)
class _Pending:
    body: Callable[[WriteTxn], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    outcome: Any = None
    error: BaseException | None = None


class _SqliteTxn:
    """The `WriteTxn` handed to one body, on the writer's connection inside its savepoint."""

    __slots__ = ("_base_revision", "_conn", "_history", "_revision", "now_us")

    def __init__(self, conn: sqlite3.Connection, base_revision: int, now_us: int, history: int) -> None:
        self._conn = conn
        self._base_revision = base_revision
        self._revision = base_revision
        self._history = history
        self.now_us = now_us

    def get(self, key: str) -> Resource | None:
        row = self._conn.execute(
            f"SELECT {_RESOURCE_COLUMNS} FROM resources WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _row_to_resource(row)

    def put(self, resource: Resource) -> None:
        values = (
            resource.key,
            resource.value,
            resource.content_type,
            resource.version,
            resource.create_revision,
            resource.mod_revision,
            resource.create_time_us,
            resource.update_time_us,
            resource.lease_id,
        )
        self._conn.execute(
            f"INSERT OR REPLACE INTO resources ({_RESOURCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", values
        )
        if resource.version == 1:
            # A new incarnation: versions of an earlier one must not be mistaken for its own.
            self._conn.execute("DELETE FROM resource_versions WHERE key = ?", (resource.key,))
        self._conn.execute(
            f"INSERT OR REPLACE INTO resource_versions ({_RESOURCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
            values,
        )
        oldest_kept = resource.version - self._history + 1
        if oldest_kept > 1:
            self._conn.execute(
                "DELETE FROM resource_versions WHERE key = ? AND version < ?", (resource.key, oldest_kept)
            )

    def delete(self, key: str) -> None:
        self._conn.execute("DELETE FROM resources WHERE key = ?", (key,))
        self._conn.execute("DELETE FROM resource_versions WHERE key = ?", (key,))

    def current_revision(self) -> int:
        return self._revision

    def next_revision(self) -> int:
        if self._revision == self._base_revision:
            self._revision += 1
        return self._revision

    def get_answer(self, request_id: str) -> StoredAnswer | None:
        row = self._conn.execute(
            "SELECT fingerprint, answer FROM request_answers WHERE request_id = ?", (request_id,)
        ).fetchone()
        return None if row is None else StoredAnswer(fingerprint=row[0], answer=row[1])

    def save_answer(self, request_id: str, fingerprint: str, answer: str) -> None:
        self._conn.execute(
            "INSERT INTO request_answers (request_id, fingerprint, answer, created_us) VALUES (?,?,?,?)",
            (request_id, fingerprint, answer, self.now_us),
        )


class SqliteStore:
    """`Store` on one SQLite file. Open with `await SqliteStore.open(path)`; one process per file."""

    def __init__(
        self,
        path: str,
        *,
        history_versions: int = 10,
        request_id_retention_seconds: int = 24 * 3600,
        durable: bool = True,
    ) -> None:
        self._path = path
        self._history = history_versions
        self._answer_retention_us = request_id_retention_seconds * 1_000_000
        self._durable = durable
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock_file: int | None = None
        self._revision = 0
        self._closed = False
        self._last_prune = 0.0
        # Written by the writer thread only; read for metrics and tests.
        self.commits = 0
        self.committed_bodies = 0

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str, **options: Any) -> SqliteStore:
        store = cls(path, **options)
        await asyncio.get_running_loop().run_in_executor(None, store._open)
        return store

    def _open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self._path))
        if not os.path.isdir(directory):
            raise StoreUnavailable(f"the directory of the database does not exist: {directory}")
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
        migrate(conn)
        self._revision = conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]
        conn.close()
        self._reader = self._connect()
        ready = threading.Event()
        self._writer = threading.Thread(
            target=self._write_loop, args=(ready,), name="sqlite-writer", daemon=True
        )
        self._writer.start()
        ready.wait()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL syncs the WAL at every commit: an acknowledged write survives power loss.
        conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA cache_size = -65536")
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

    def _write_loop(self, ready: threading.Event) -> None:
        conn = self._connect()
        revision = self._revision
        ready.set()
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
        start_revision = revision
        now = _now_us()
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._prune_answers(conn, now)
            for pending in batch:
                conn.execute("SAVEPOINT body")
                txn = _SqliteTxn(conn, revision, now, self._history)
                try:
                    pending.outcome = pending.body(txn)
                except BaseException as error:
                    conn.execute("ROLLBACK TO body")
                    pending.error = error
                else:
                    revision = txn.current_revision()
                conn.execute("RELEASE body")
            if revision != start_revision:
                conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
            conn.execute("COMMIT")
            self.commits += 1
            self.committed_bodies += len(batch)
            return revision
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failure = StoreUnavailable(f"the database could not commit: {error.__class__.__name__}")
            for pending in batch:
                pending.outcome = None
                pending.error = failure
            return start_revision

    def _prune_answers(self, conn: sqlite3.Connection, now_us: int) -> None:
        if time.monotonic() - self._last_prune < _PRUNE_EVERY_SECONDS:
            return
        self._last_prune = time.monotonic()
        conn.execute(
            "DELETE FROM request_answers WHERE rowid IN "
            "(SELECT rowid FROM request_answers WHERE created_us < ? LIMIT ?)",
            (now_us - self._answer_retention_us, _PRUNE_BATCH_ROWS),
        )

    def _resolve(self, batch: list[_Pending], revision: int) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        for pending in batch:
            by_loop.setdefault(pending.loop, []).append(pending)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed while we committed
                loop.call_soon_threadsafe(self._settle, items, revision)

    def _settle(self, items: list[_Pending], revision: int) -> None:
        self._revision = max(self._revision, revision)
        for pending in items:
            if pending.future.done():
                continue
            if pending.error is not None:
                pending.future.set_exception(pending.error)
            else:
                pending.future.set_result(pending.outcome)

    # -- reads ------------------------------------------------------------------------------

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self._reader is None or self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the database could not be read: {error.__class__.__name__}") from None

    async def get(self, key: str) -> Resource | None:
        rows = self._read(f"SELECT {_RESOURCE_COLUMNS} FROM resources WHERE key = ?", (key,))
        return _row_to_resource(rows[0]) if rows else None

    async def get_version(self, key: str, create_revision: int, version: int) -> Resource | None:
        rows = self._read(
            f"SELECT {_RESOURCE_COLUMNS} FROM resource_versions "
            "WHERE key = ? AND version = ? AND create_revision = ?",
            (key, version, create_revision),
        )
        return _row_to_resource(rows[0]) if rows else None

    async def list_resources(
        self, prefix: str, start_after: str, limit: int, *, with_values: bool
    ) -> list[Resource]:
        columns = _RESOURCE_COLUMNS if with_values else _META_COLUMNS
        lower = max(prefix, start_after)
        upper = _prefix_upper_bound(prefix)
        if upper is None:
            sql = f"SELECT {columns} FROM resources WHERE key >= ? AND key > ? ORDER BY key LIMIT ?"
            params: tuple[Any, ...] = (lower, start_after, limit)
        else:
            sql = (
                f"SELECT {columns} FROM resources WHERE key >= ? AND key > ? AND key < ? ORDER BY key LIMIT ?"
            )
            params = (lower, start_after, upper, limit)
        return [_row_to_resource(row) for row in self._read(sql, params)]

    async def list_versions(
        self, key: str, create_revision: int, below_version: int, limit: int, *, with_values: bool
    ) -> list[Resource]:
        columns = _RESOURCE_COLUMNS if with_values else _META_COLUMNS
        rows = self._read(
            f"SELECT {columns} FROM resource_versions WHERE key = ? AND create_revision = ? AND version < ? "
            "ORDER BY version DESC LIMIT ?",
            (key, create_revision, below_version, limit),
        )
        return [_row_to_resource(row) for row in rows]

    async def current_revision(self) -> int:
        return self._revision

    def now_us(self) -> int:
        return _now_us()
