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
import fcntl
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from lockservice.errors import StoreUnavailable
from lockservice.model import ChangeEvent, EventType, LockListing, LockWaiter
from lockservice.store.base import Capabilities, DurableState, Notice, NoticeListener, WriteTxn
from lockservice.store.listings import ITEMS_SHOWN, QueueOf, lock_page
from lockservice.store.read_cache import ReadCache
from lockservice.store.rows import PAGE_TOKEN_SECRET_SQL
from lockservice.store.sql import SQLITE
from lockservice.store.sqlite.checkpoints import WRITER_PRAGMAS, Checkpointer
from lockservice.store.sqlite.failures import cause
from lockservice.store.sqlite.pruning import Pruner
from lockservice.store.sqlite.reads import SqliteReads
from lockservice.store.sqlite.schema import migrate
from lockservice.store.sqlite.txn import TEMP_WAITERS
from lockservice.store.sqlite.writer import Pending, Writer

__all__ = ["SqliteStore"]

T = TypeVar("T")

# Settles a caller waits through for the batch deciding its key before it gives up waiting (and
# its write goes to the writer): the batch's own comes first or second.
_SETTLE_TURNS = 8
# Keys whose current state reads take from memory (about 400 bytes each with a 100-byte value).
_READ_CACHE_ENTRIES = 65_536


class SqliteStore(SqliteReads):
    """`Store` on one SQLite file. Open with `await SqliteStore.open(path)`; one process per file.

    This module opens and closes the file and delivers commits to the event loop; the writer
    thread is `writer`, its bodies' transaction `txn`, the reads `reads`, pruning `pruning`,
    the WAL checkpoints `checkpoints`."""

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
        self._dialect = SQLITE
        self._path = path
        self._listeners: list[NoticeListener] = []
        self._compacted = 0
        self._durable = durable
        self._reader: sqlite3.Connection | None = None
        self._lock_file: int | None = None
        self._revision = 0
        self._token_floor = 0  # set by a restore, which runs with no server: read once at open
        self._closed = False
        self._cache = ReadCache(_READ_CACHE_ENTRIES, read_cache_bytes)
        self._page_cache_kib = max(page_cache_bytes // 1024, 1024)
        self._checkpointer = Checkpointer(path)
        self._writer = Writer(
            path,
            history_versions,
            Pruner(request_id_retention_seconds * 1_000_000, watch_history_revisions),
            self._settle,
            self._checkpointer,
        )
        self.page_token_secret = b""  # read at open
        self.capabilities = Capabilities(
            observe_commits=self._writer.observe_commits,
            stats=self.stats,
            commit_counts=lambda: (self._writer.commits, self._writer.committed_bodies),
            durable_state=self._durable_state,
        )
        # By loop, callers waiting out a batch that decides their key: woken at every settle.
        self._settle_waiters: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}

    @property
    def commits(self) -> int:
        """Commits so far (each one fsync)."""
        return self._writer.commits

    @property
    def committed_bodies(self) -> int:
        """Bodies committed so far; divided by `commits`, the group-commit batch size."""
        return self._writer.committed_bodies

    @property
    def checkpoints(self) -> int:
        """Background WAL checkpoints so far (`checkpoints`)."""
        return self._checkpointer.checkpoints

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
            raise StoreUnavailable(f"cannot open the database {self._path}: {cause(error)}") from None

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
        for statement in (*WRITER_PRAGMAS, *TEMP_WAITERS):
            writer.execute(statement)
        checkpoints = self._connect()
        self._writer.start(writer, self._revision, self._compacted, self._token_floor)
        self._checkpointer.start(checkpoints)

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
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._writer.stop)
        await loop.run_in_executor(None, self._checkpointer.stop)
        if self._reader is not None:
            self._reader.close()
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    # -- writes and their delivery -------------------------------------------------------------

    async def write(self, body: Callable[[WriteTxn], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._writer.submit(Pending(body, future, loop))
        return await future

    async def list_locks(
        self, prefix: str, start_after: str, limit: int, *, include_queue: bool
    ) -> list[LockListing]:
        return await lock_page(
            self._read_rows, "?", self._queues, prefix, start_after, limit, include_queue=include_queue
        )

    async def _queues(self, names: Sequence[str], include_queue: bool) -> dict[str, QueueOf]:
        """The queues of `names` (`listings.Queues`): counted in memory; listed from the writer's
        connection, the only one that sees its temporary waiter table, by a body that only reads."""
        counts = self._writer.waiter_counts
        waiting = [name for name in names if counts.get(name)]
        listed: dict[str, tuple[LockWaiter, ...]] = {}
        if include_queue and waiting:
            listed = await self.write(
                lambda txn: {name: tuple(txn.lock_waiters(name, ITEMS_SHOWN)) for name in waiting}
            )
        return {name: (counts.get(name, 0), listed.get(name, ())) for name in names}

    async def _durable_state(self, key: str) -> DurableState | None:
        """`Capabilities.durable_state`: from the read cache, once the batch committing a change
        of `key` (if one is) has settled on this loop; None when the cache does not know the key.

        The cache holds committed states only (the settled ones, and what the reader saw in the
        file), and this process is the file's only writer, so what it knows is the latest durable
        state of the key. A batch publishes the keys it changes before its COMMIT (`Deciding`):
        a caller that sees its key there waits for the batch's outcomes on this loop, which come
        after the cache has the new state (or the commit failed, and the cache keeps the old)."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        deciding = self._writer.deciding
        if deciding.revision > self._revision and key in deciding.keys:
            loop = asyncio.get_running_loop()
            if loop not in deciding.loops:
                return None  # settled on another loop only: no wait here could end
            # Its settle comes after those of the batches before it, on this loop: a turn or two.
            for _ in range(_SETTLE_TURNS):
                if self._revision >= deciding.revision or deciding.failed:
                    break
                settled: asyncio.Future[None] = loop.create_future()
                self._settle_waiters.setdefault(loop, []).append(settled)
                await settled
            else:
                return None
        entry = self._cache.entry(key)
        if entry is None:
            return None
        revision, current = entry
        return current, max(self._revision, revision)

    def _settle(self, items: list[Pending], revision: int, compacted: int) -> None:
        """On the callers' loop after a commit (or a failed one): answers, then notices."""
        self._revision = max(self._revision, revision)
        self._compacted = max(self._compacted, compacted)
        changes: list[Notice] = []
        lock_notices: list[Notice] = []
        for pending in items:
            for notice in pending.notices or ():
                if isinstance(notice, ChangeEvent):
                    resource = notice.resource if notice.type is EventType.PUT else None
                    self._cache.offer(notice.resource.key, notice.revision, resource)
                    changes.append(notice)
                else:
                    lock_notices.append(notice)
        # A lock's grants first (resolving a waiter's future is all their listener does): the
        # next holder's answer leaves before the releasing caller's, which is not on the
        # hand-over's path. Then the answers: their callers are woken before the watchers the
        # listeners wake, so an acknowledgement never queues behind a fan-out to thousands of
        # watchers. Nothing runs in between: every listener has its notices before any woken
        # caller takes a step.
        if lock_notices:
            for listener in self._listeners:
                listener(lock_notices)
        for pending in items:
            if pending.future.done():
                continue
            if pending.error is not None:
                pending.future.set_exception(pending.error)
            else:
                pending.future.set_result(pending.outcome)
        waiters = self._settle_waiters.pop(items[0].loop, None) if items else None
        if waiters:
            for waiter in waiters:
                if not waiter.done():  # a cancelled caller's is
                    waiter.set_result(None)
        if changes:
            for listener in self._listeners:
                listener(changes)

    def subscribe(self, listener: NoticeListener) -> None:
        self._listeners.append(listener)
