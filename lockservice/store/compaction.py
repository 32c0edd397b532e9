"""`lockservice compact`: prune history past its retention and give the space back, online.

A server already prunes as it writes (versions beyond `--history-versions` per write, events
beyond `--watch-history` and request answers past `--request-id-retention` in amortised
batches). This catches up at once, after a retention was lowered or a burst left a backlog, and
returns the freed pages to the file system. It works on the store directly, as `backup` does,
while a server runs and writes:

- every deletion runs in batches of `BATCH_ROWS`, each its own short transaction, so a server's
  writer waits at most one batch (SQLite: within its 5 s busy timeout; PostgreSQL: row locks);
- what it deletes is what the server would delete itself: answers past retention, versions
  older than the newest `history_versions` of their key, events at or below the watch horizon
  with `compacted_revision` raised in the same transaction (a Watch from there on answers
  REVISION_COMPACTED instead of missing changes);
- space: on SQLite, `PRAGMA wal_checkpoint(TRUNCATE)`; when no server holds the file (its
  `.lock`, held here meanwhile so none starts) also `VACUUM`, which would block a writer for its
  whole run. On PostgreSQL, plain `VACUUM (ANALYZE)` (never FULL, which locks tables).

SQLite's events are pruned only offline: a running SQLite server keeps its compacted revision in
memory and would replay from events removed under it. PostgreSQL servers read it from the
database, so there events are pruned online too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    Conn = psycopg.Connection[tuple[Any, ...]]


__all__ = [
    "BATCH_ROWS",
    "CompactError",
    "Compacted",
    "Retention",
    "compact_postgres",
    "compact_sqlite",
    "holding_server_lock",
]

BATCH_ROWS = 1000

# Tables a PostgreSQL VACUUM visits: every table whose rows are deleted or updated.
_POSTGRES_TABLES = "resources, resource_versions, events, request_answers, leases, locks, lock_waiters, meta"


class CompactError(Exception):
    """The store cannot be compacted; the message is one line."""


@dataclass(frozen=True, slots=True)
class Retention:
    """What a server keeps: as `--history-versions`, `--watch-history`, `--request-id-retention`."""

    history_versions: int
    watch_history_revisions: int
    request_id_retention_seconds: int


@dataclass(frozen=True, slots=True)
class Compacted:
    """Rows deleted, the compacted revision after (None when events were left alone), the
    store's size in bytes before and after, what reclaimed space, and whether a server ran."""

    answers: int
    versions: int
    events: int
    compacted_revision: int | None
    size_before: int
    size_after: int
    reclaimed_by: str
    online: bool


# One statement of a batch: runs it in its own transaction and answers the rows it deleted.
Batch = Callable[[str, tuple[Any, ...]], int]


def _answers_sql(mark: str) -> str:
    return (
        "DELETE FROM request_answers WHERE request_id IN "
        f"(SELECT request_id FROM request_answers WHERE created_us < {mark} LIMIT {mark})"
    )


def _versions_sql(mark: str) -> str:
    return (
        "DELETE FROM resource_versions WHERE (key, version) IN "
        "(SELECT v.key, v.version FROM resource_versions v JOIN resources r ON r.key = v.key "
        f"WHERE v.version <= r.version - {mark} LIMIT {mark})"
    )


def _event_batch_end_sql(mark: str) -> str:
    """The last revision of the next batch of events at or below a horizon (NULL: none left)."""
    return (
        "SELECT max(revision) FROM (SELECT revision FROM events WHERE revision <= "
        f"{mark} ORDER BY revision LIMIT {mark}) AS batch"
    )


def _until_done(batch: Batch, sql: str, params: tuple[Any, ...]) -> int:
    """Runs `sql` (whose last parameter is the batch size) until a batch deletes less than a
    full batch; the rows deleted in all."""
    total = 0
    while True:
        deleted = batch(sql, (*params, BATCH_ROWS))
        total += deleted
        if deleted < BATCH_ROWS:
            return total


def _prune_rows(batch: Batch, mark: str, retention: Retention, now_us: int) -> tuple[int, int]:
    answers = _until_done(
        batch, _answers_sql(mark), (now_us - retention.request_id_retention_seconds * 1_000_000,)
    )
    versions = _until_done(batch, _versions_sql(mark), (retention.history_versions,))
    return answers, versions


# -- SQLite ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def holding_server_lock(db_path: str) -> Iterator[bool]:
    """Holds the database's `.lock` file, as a server does, if no server holds it: yields True
    while held (no server runs on the file, and none can start), False when a server runs."""
    fd = os.open(db_path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _sqlite_size(path: str) -> int:
    return sum(os.path.getsize(f) for f in (path, path + "-wal") if os.path.exists(f))


def _sqlite_batch(conn: sqlite3.Connection) -> Batch:
    def run(sql: str, params: tuple[Any, ...]) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            deleted = conn.execute(sql, params).rowcount
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return deleted

    return run


def _sqlite_events(conn: sqlite3.Connection, watch_history: int) -> tuple[int, int]:
    """Offline: events at or below the watch horizon, in batches of whole revisions; returns
    (events deleted, compacted revision)."""
    deleted = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        horizon = int(meta.get("revision", 0)) - watch_history
        compacted = int(meta.get("compacted_revision", 0))
        row = conn.execute(_event_batch_end_sql("?"), (horizon, BATCH_ROWS)).fetchone()
        if row[0] is None:
            conn.execute("COMMIT")
            return deleted, compacted
        upto = int(row[0])
        deleted += conn.execute("DELETE FROM events WHERE revision <= ?", (upto,)).rowcount
        conn.execute(
            "UPDATE meta SET value = max(value, ?) WHERE name = 'compacted_revision'", (min(horizon, upto),)
        )
        conn.execute("COMMIT")


def compact_sqlite(db_path: str, retention: Retention) -> Compacted:
    """Compacts the SQLite store at `db_path`, online or offline (see the module docs)."""
    if not os.path.isfile(db_path):
        raise CompactError(f"the database {db_path} does not exist")
    before = _sqlite_size(db_path)
    with holding_server_lock(db_path) as offline:
        try:
            with contextlib.closing(sqlite3.connect(db_path, isolation_level=None, timeout=30.0)) as conn:
                conn.execute("PRAGMA busy_timeout = 30000")
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    raise CompactError(f"{db_path} is not a lockservice database in WAL mode")
                answers, versions = _prune_rows(
                    _sqlite_batch(conn), "?", retention, int(time.time() * 1_000_000)
                )
                events, compacted = (
                    (0, None) if not offline else _sqlite_events(conn, retention.watch_history_revisions)
                )
                if offline:
                    conn.execute("VACUUM")
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as error:
            raise CompactError(f"cannot compact {db_path}: {error}") from None
    reclaimed = "VACUUM and wal_checkpoint(TRUNCATE)" if offline else "wal_checkpoint(TRUNCATE)"
    if busy:
        reclaimed += " (the WAL was in use by readers: truncated later by the server)"
    return Compacted(
        answers=answers,
        versions=versions,
        events=events,
        compacted_revision=compacted,
        size_before=before,
        size_after=_sqlite_size(db_path),
        reclaimed_by=reclaimed,
        online=not offline,
    )


# -- PostgreSQL -----------------------------------------------------------------------------------


def _postgres_batch(conn: Conn) -> Batch:
    def run(sql: str, params: tuple[Any, ...]) -> int:
        with conn.transaction():
            rows: int = conn.execute(sql.encode(), params).rowcount
            return rows

    return run


def _postgres_events(conn: Conn, watch_history: int) -> tuple[int, int]:
    """Events at or below the watch horizon, in batches; `compacted_revision` raised with each
    batch, as the servers' own pruning does. Returns (events deleted, compacted revision)."""
    deleted = 0
    while True:
        with conn.transaction():
            meta: dict[str, int] = dict(conn.execute(b"SELECT name, value FROM meta").fetchall())
            horizon = int(meta["revision"]) - watch_history
            row = conn.execute(_event_batch_end_sql("%s").encode(), (horizon, BATCH_ROWS)).fetchone()
            upto = None if row is None or row[0] is None else int(row[0])
            if upto is not None:
                deleted += conn.execute(b"DELETE FROM events WHERE revision <= %s", (upto,)).rowcount
                conn.execute(
                    b"UPDATE meta SET value = GREATEST(value, %s) WHERE name = 'compacted_revision'",
                    (min(horizon, upto),),
                )
            compacted = conn.execute(b"SELECT value FROM meta WHERE name = 'compacted_revision'").fetchone()
        if upto is None:
            return deleted, int(compacted[0]) if compacted else 0


def _postgres_size(conn: Conn) -> int:
    row = conn.execute(b"SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def compact_postgres(url: str, retention: Retention) -> Compacted:
    """Compacts the PostgreSQL store at `url`, while its servers run (see the module docs)."""
    # psycopg is the `postgres` extra: compacting a SQLite file works without it.
    import psycopg

    from lockservice.store.postgres.connections import NOW_US_SQL

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            before = _postgres_size(conn)
            now_row = conn.execute(NOW_US_SQL.encode()).fetchone()
            now_us = int(now_row[0]) if now_row else 0
            answers, versions = _prune_rows(_postgres_batch(conn), "%s", retention, now_us)
            events, compacted = _postgres_events(conn, retention.watch_history_revisions)
            conn.execute(f"VACUUM (ANALYZE) {_POSTGRES_TABLES}".encode())
            after = _postgres_size(conn)
    except psycopg.Error as error:
        raise CompactError(
            f"cannot compact the PostgreSQL store: {error.__class__.__name__}: {error}"
        ) from None
    return Compacted(
        answers=answers,
        versions=versions,
        events=events,
        compacted_revision=compacted,
        size_before=before,
        size_after=after,
        reclaimed_by="VACUUM (ANALYZE)",
        online=True,
    )
