"""What the PostgreSQL store forgets: request answers past their retention, and events past the
watch window. Any replica may prune (each at most one at a time, `PostgresStore`): deleting what
another replica already deleted is harmless, and the compacted revision only moves forward."""

from __future__ import annotations

import psycopg_pool

from lockservice.store.postgres.connections import NOW_US_SQL

__all__ = ["prune"]


def prune(pool: psycopg_pool.ConnectionPool, answer_retention_us: int, watch_history: int) -> int:
    """Drops expired request answers and the events `watch_history` revisions or more behind
    the current revision, in one transaction; returns the revision compacted to (0: none)."""
    with pool.connection() as conn, conn.transaction():
        now_us: int = conn.execute(NOW_US_SQL.encode()).fetchone()[0]  # type: ignore[index]
        conn.execute(b"DELETE FROM request_answers WHERE created_us < %s", (now_us - answer_retention_us,))
        revision: int = conn.execute(b"SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]  # type: ignore[index]
        horizon = revision - watch_history
        if horizon <= 0:
            return 0
        conn.execute(b"DELETE FROM events WHERE revision <= %s", (horizon,))
        conn.execute(
            b"UPDATE meta SET value = GREATEST(value, %s) WHERE name = 'compacted_revision'", (horizon,)
        )
        return horizon
