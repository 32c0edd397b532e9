"""The SQLite store's pruning of events past the watch window, in bounded bites.

Backend-specific because the bite is the SQLite writer's: pruning runs inside its commits.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lockservice.store.sqlite.pruning import Pruner
from lockservice.store.sqlite.schema import migrate

_EVENTS_PER_REVISION = 128  # a bulk load: one Transact of 128 puts per revision


def _events(conn: sqlite3.Connection) -> int:
    count: int = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return count


def test_a_backlog_of_events_is_pruned_a_bite_per_commit(tmp_path: Path) -> None:
    """After a bulk load, each commit prunes about 1,000 events (whole revisions), until the
    log is back within the watch window: no single commit pays for the whole backlog."""
    conn = sqlite3.connect(str(tmp_path / "db.sqlite"), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # durability is not what this test is about
    migrate(conn)
    revisions = 100
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events (revision, seq, type, key, value, content_type, version, create_revision, "
        "mod_revision, create_time_us, update_time_us, lease_id) "
        "VALUES (?, ?, 'PUT', ?, x'', '', 1, ?, ?, 0, 0, '')",
        [
            (revision, seq, f"k{revision}/{seq}", revision, revision)
            for revision in range(1, revisions + 1)
            for seq in range(_EVENTS_PER_REVISION)
        ],
    )
    conn.execute("COMMIT")
    pruner = Pruner(answer_retention_us=10**12, watch_history=10)

    compacted = pruner.prune(conn, now_us=0, revision=revisions)
    # 1,000 rows reach into revision 8 (7 x 128 = 896): the bite stops at a whole revision.
    assert compacted == 8
    assert _events(conn) == (revisions - 8) * _EVENTS_PER_REVISION

    bites = [compacted]
    for _ in range(100):  # bounded: it stops once the log is within the window and its margin
        compacted = pruner.prune(conn, now_us=0, revision=revisions)
        if compacted == bites[-1]:
            break
        bites.append(compacted)
    # The window is 10 revisions and pruning waits for a margin of 16 beyond it (events_overrun).
    assert bites == [8, 16, 24, 32, 40, 48, 56, 64, 72, 80]
    assert _events(conn) == (revisions - 80) * _EVENTS_PER_REVISION
    assert conn.execute("SELECT value FROM meta WHERE name = 'compacted_revision'").fetchone()[0] == 80
    conn.close()
