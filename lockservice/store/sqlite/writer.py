"""The SQLite store's one writer: a thread that owns the only writing connection.

It takes every body queued while the previous commit was syncing, runs each under its own
savepoint (a body that raises rolls back alone, its neighbours commit), and commits them with
one fsync (group commit). Outcomes are handed back to each caller's event loop (`Settle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from lockservice.errors import StoreUnavailable
from lockservice.model import Resource
from lockservice.store.base import CommitObserver, Notice, WriteTxn
from lockservice.store.outage import Outage, disk_full_error, disk_full_outage
from lockservice.store.sqlite.checkpoints import Checkpointer
from lockservice.store.sqlite.failures import cause, error_name, storage_failed
from lockservice.store.sqlite.pruning import Pruner
from lockservice.store.sqlite.txn import SqliteTxn

__all__ = ["Deciding", "Pending", "Settle", "Writer"]

_log = structlog.get_logger("lockservice.store.sqlite")

_MAX_BATCH = 256


@dataclass(slots=True)
class Pending:
    """One queued body and, once committed (or not), what its caller gets."""

    body: Callable[[WriteTxn], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    outcome: Any = None
    error: BaseException | None = None
    notices: list[Notice] | None = None


# Called on a caller's event loop with its settled bodies, the store revision after their commit
# and the compacted revision as of the last successful commit.
Settle = Callable[[list[Pending], int, int], None]


@dataclass(slots=True)
class Deciding:
    """A batch whose bodies have run and that is committing: the keys its bodies changed, the
    store revision once it commits, and the event loops its outcomes are settled on. Published
    by the writer before the batch's COMMIT; `failed` is set if that commit fails."""

    revision: int
    keys: set[str]
    loops: set[asyncio.AbstractEventLoop]
    failed: bool = False


_NOTHING_DECIDED = Deciding(0, set(), set())


def _now_us() -> int:
    return time.time_ns() // 1000


class Writer:
    """The writer thread and what it owns: the queue of bodies, the writing connection (from
    `start` to `stop`), the commit counters and observers, the queue lengths it publishes, and
    the logging of failed commits. `settle` is the store's delivery of outcomes and notices."""

    def __init__(
        self, path: str, history: int, pruner: Pruner, settle: Settle, checkpointer: Checkpointer
    ) -> None:
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._history = history
        self._pruner = pruner
        self._settle = settle
        self._checkpointer = checkpointer
        self._token_floor = 0
        self._compacted_published = 0
        # Written by the writer thread only; read for metrics and tests.
        self.commits = 0
        self.committed_bodies = 0
        self._commit_observers: list[CommitObserver] = []
        # Queued waiters by lock name, as of the last commit. Replaced whole by the writer, never
        # changed in place, so readers on the loop's thread can use it without a lock.
        self.waiter_counts: dict[str, int] = {}
        # The batch being committed (or the last one), replaced whole by the writer: what a
        # caller on a loop may wait for instead of queueing a write the batch already decides.
        self.deciding = _NOTHING_DECIDED
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

    def start(self, conn: sqlite3.Connection, revision: int, compacted: int, token_floor: int) -> None:
        """Starts the thread on `conn` (which it closes when it stops) from the stored state."""
        self._token_floor = token_floor
        self._pruner.compacted = compacted
        self._compacted_published = compacted
        self._thread = threading.Thread(
            target=self._write_loop, args=(conn, revision), name="sqlite-writer", daemon=True
        )
        self._thread.start()

    def submit(self, pending: Pending) -> None:
        self._queue.put(pending)

    def stop(self) -> None:
        """Finishes the bodies queued so far, then ends the thread (blocks until it has)."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def observe_commits(self, observer: CommitObserver) -> None:
        """Calls `observer(batch_size, seconds)` on the writer thread after every commit."""
        self._commit_observers.append(observer)

    def _write_loop(self, conn: sqlite3.Connection, revision: int) -> None:
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
            self._checkpointer.copy_tail(conn)
            if stop:
                break
        conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Pending], revision: int) -> int:
        started = time.perf_counter()
        start_revision = revision
        start_compacted = self._pruner.compacted
        now = _now_us()
        waiter_changes: dict[str, int] = {}
        # The states of the keys the batch's bodies wrote so far: a later body's read of one of
        # them costs no statement (a loser on a hot key then runs none, not even its savepoint).
        written: dict[str, Resource | None] = {}
        deciding: Deciding | None = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            compacted = self._pruner.prune(conn, now, revision)
            for pending in batch:
                txn = SqliteTxn(conn, revision, now, self._history, self._token_floor, written)
                try:
                    pending.outcome = pending.body(txn)
                except BaseException as error:
                    if isinstance(error, sqlite3.Error) and storage_failed(error, conn):
                        raise  # the storage failed, not the body: the whole batch fails with it
                    if txn.in_savepoint:
                        conn.execute("ROLLBACK TO body")
                        conn.execute("RELEASE body")
                    pending.error = error
                else:
                    if txn.in_savepoint:
                        conn.execute("RELEASE body")
                    revision = txn.current_revision()
                    pending.notices = txn.notices
                    written.update(txn.written)
                    for name, change in txn.waiter_changes.items():
                        waiter_changes[name] = waiter_changes.get(name, 0) + change
            if revision != start_revision:
                conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
                deciding = Deciding(revision, set(written), {pending.loop for pending in batch})
                self.deciding = deciding
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
            if deciding is not None:
                deciding.failed = True  # before the callers are settled: none waits on it
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._pruner.compacted = start_compacted  # its pruning was rolled back too
            failure = self._commit_failure(error)
            for pending in batch:
                pending.outcome = None
                pending.error = failure
                pending.notices = None
            return start_revision

    def _commit_failure(self, error: sqlite3.Error) -> StoreUnavailable:
        """Logs a failed commit (rate-limited) and says what the callers get."""
        name = error_name(error)
        if name == "SQLITE_FULL":
            self._disk_full.failed(cause(error))
            return disk_full_error()
        self._commit_failing.failed(cause(error))
        return StoreUnavailable(f"the database could not commit: {cause(error)}", metadata={"cause": name})

    def _publish_waiter_counts(self, changes: dict[str, int]) -> None:
        counts = dict(self.waiter_counts)
        for name, change in changes.items():
            count = counts.get(name, 0) + change
            if count > 0:
                counts[name] = count
            else:
                counts.pop(name, None)
        self.waiter_counts = counts

    def _resolve(self, batch: list[Pending], revision: int) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Pending]] = {}
        for pending in batch:
            by_loop.setdefault(pending.loop, []).append(pending)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed while we committed
                loop.call_soon_threadsafe(self._settle, items, revision, self._compacted_published)
