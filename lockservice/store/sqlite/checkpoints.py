"""WAL checkpoints off the writer's commit path.

With SQLite's automatic checkpoints, the commit that crosses `wal_autocheckpoint` pages copies
the WAL into the database file and syncs it before it returns: every write queued behind that
commit waits for it, and the larger the file the longer it takes (random pages across a file of
hundreds of MB). The writer's connection turns them off (`WRITER_PRAGMAS`), and this thread
runs a PASSIVE checkpoint on a connection of its own instead, on a timer: it never takes the
write lock, so commits go on while it copies, and it copies only frames every reader is done
with. A commit is durable once its WAL frames are synced (synchronous = FULL), before any
checkpoint: checkpoints only bound the WAL's size, they add nothing to durability.

The writer starts writing the WAL from its beginning again only after a checkpoint that copied
all of it, which a checkpoint running beside a busy writer never does (frames keep arriving while
it copies): left alone, the WAL would grow without bound. So after each background checkpoint
the writer copies the few frames committed meanwhile itself, between two batches
(`copy_tail`): a PASSIVE checkpoint of a short tail, after which its next transaction restarts
the WAL. The WAL stays about one interval of writes long; `journal_size_limit` truncates a file
that grew past it during a burst.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

import structlog

from lockservice.store.outage import Outage
from lockservice.store.sqlite.failures import cause

__all__ = ["CHECKPOINT_INTERVAL_SECONDS", "WRITER_PRAGMAS", "Checkpointer"]

_log = structlog.get_logger("lockservice.store.sqlite")

CHECKPOINT_INTERVAL_SECONDS = 0.5

# The writer's connection: no automatic checkpoint inside a commit; a WAL left larger than
# 64 MiB by a burst is truncated back to that after its next reset.
WRITER_PRAGMAS = (
    "PRAGMA wal_autocheckpoint = 0",
    "PRAGMA journal_size_limit = 67108864",
)


class Checkpointer:
    """A thread that checkpoints the WAL every `interval` seconds on its own connection, from
    `start` until `stop` (which waits for a checkpoint under way and closes the connection).
    A failed checkpoint is logged and retried at the next interval: the commits it would have
    copied are in the WAL, durable, and readable meanwhile."""

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        self._interval = interval
        # One log line when checkpoints start failing (a full disk), then one every 30 s.
        self._failing = Outage(
            _log,
            started="the WAL could not be checkpointed",
            ongoing="the WAL still cannot be checkpointed",
            ended="checkpoints succeed again",
            level="warning",
            database=path,
        )
        self._stopping = threading.Event()
        self._tail_due = threading.Event()  # set after a background checkpoint, for the writer
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # completed checkpoint calls; read by tests

    def start(self, conn: sqlite3.Connection) -> None:
        """Starts the thread on `conn`, which it owns (and closes when it stops)."""
        self._thread = threading.Thread(target=self._run, args=(conn,), name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ends the thread (blocks until it has); a no-op if it was never started."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while not self._stopping.wait(self._interval):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint: copies what it can without waiting for the writer or readers."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:
            self._failing.failed(cause(error))
            return
        self._failing.ended()
        self.checkpoints += 1
        self._tail_due.set()

    def copy_tail(self, writer: sqlite3.Connection) -> None:
        """On the writer's thread between batches: after a background checkpoint, copies what
        was committed while it ran, so the WAL can restart. Failures are the background's to
        report: the next one retries."""
        if not self._tail_due.is_set():
            return
        self._tail_due.clear()
        with contextlib.suppress(sqlite3.Error):
            writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
