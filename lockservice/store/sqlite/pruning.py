"""What the SQLite store forgets: request answers past their retention, and events past the
watch window. Runs in the writer's transaction, so a failed commit rolls the pruning back too."""

from __future__ import annotations

import sqlite3
import time

from lockservice.store.sql import events_overrun

__all__ = ["Pruner"]

_PRUNE_EVERY_SECONDS = 60.0
_PRUNE_BATCH_ROWS = 10_000
# Events go in smaller bites, as their pruning runs in every commit while a backlog lasts: after
# a bulk load (a million keys, a million events) 10,000 rows a commit made each commit write
# ~2 MB more for a hundred commits in a row; 1,000 rows a commit costs each about a millisecond.
_PRUNE_EVENT_ROWS = 1_000


class Pruner:
    """Owned by the writer thread: `compacted` is the compacted revision as of its transaction."""

    def __init__(self, answer_retention_us: int, watch_history: int) -> None:
        self._answer_retention_us = answer_retention_us
        self._watch_history = watch_history
        self._last_prune = 0.0
        self.compacted = 0

    def prune(self, conn: sqlite3.Connection, now_us: int, revision: int) -> int:
        """Drops expired request answers (every minute) and events beyond the watch window (once
        the window is overrun by a margin, `events_overrun`); returns the compacted revision.
        Bounded per call so a commit never stalls on a large backlog. A caller whose transaction
        rolls back restores `compacted` to what it was before."""
        if time.monotonic() - self._last_prune >= _PRUNE_EVERY_SECONDS:
            self._last_prune = time.monotonic()
            conn.execute(
                "DELETE FROM request_answers WHERE rowid IN "
                "(SELECT rowid FROM request_answers WHERE created_us < ? LIMIT ?)",
                (now_us - self._answer_retention_us, _PRUNE_BATCH_ROWS),
            )
        if events_overrun(revision, self.compacted, self._watch_history):
            horizon = revision - self._watch_history
            row = conn.execute(
                "SELECT max(revision) FROM (SELECT revision FROM events WHERE revision <= ? "
                "ORDER BY revision LIMIT ?)",
                (horizon, _PRUNE_EVENT_ROWS),
            ).fetchone()
            compacted = horizon if row[0] is None else min(horizon, row[0])
            conn.execute("DELETE FROM events WHERE revision <= ?", (compacted,))
            conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted_revision'", (compacted,))
            self.compacted = compacted
        return self.compacted
