"""The SQLite schema and its versioned migrations, applied in order at start.

Each migration runs once, inside the transaction that records it, so a crash mid-migration
leaves the previous schema intact. Once committed, each applied migration is logged, one line
each (`lockservice.store.migrations.log_applied`); `schema_version` reads the version without
changing anything.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable

import sqlite_utils

from lockservice.store.migrations import Applied, apply_pending, log_applied
from lockservice.store.rows import new_page_token_secret

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version"]


def _v1_resources(db: sqlite_utils.Database) -> None:
    resource_columns = {
        "key": str,
        "value": bytes,
        "content_type": str,
        "version": int,
        "create_revision": int,
        "mod_revision": int,
        "create_time_us": int,
        "update_time_us": int,
        "lease_id": str,
    }
    not_null = set(resource_columns)
    db.table("resources").create(resource_columns, pk="key", not_null=not_null)
    db.table("resource_versions").create(resource_columns, pk=("key", "version"), not_null=not_null)
    db.table("request_answers").create(
        {"request_id": str, "fingerprint": str, "answer": str, "created_us": int},
        pk="request_id",
        not_null={"request_id", "fingerprint", "answer", "created_us"},
    )
    db.table("request_answers").create_index(["created_us"])
    db.execute("INSERT INTO meta (name, value) VALUES ('revision', 0)")


def _v2_leases_locks_events(db: sqlite_utils.Database) -> None:
    db.table("leases").create(
        {
            "lease_id": str,
            "holder": str,
            "ttl_seconds": int,
            "grant_time_us": int,
            "expire_time_us": int,
            "owner_lock": str,
        },
        pk="lease_id",
        not_null={"lease_id", "holder", "ttl_seconds", "grant_time_us", "expire_time_us", "owner_lock"},
    )
    db.table("leases").create_index(["expire_time_us"])
    lock_columns = {
        "name": str,
        "held": int,
        "holder": str,
        "lease_id": str,
        "token": int,
        "acquire_time_us": int,
        "lock_delay_us": int,
        "available_time_us": int,
        "grant_id": str,
    }
    db.table("locks").create(lock_columns, pk="name", not_null=set(lock_columns))
    db.table("locks").create_index(["lease_id"])
    waiter_columns = {
        "seq": int,
        "waiter_id": str,
        "name": str,
        "holder": str,
        "lease_id": str,
        "ttl_seconds": int,
        "lock_delay_us": int,
        "request_id": str,
        "fingerprint": str,
        "deadline_us": int,
    }
    db.table("lock_waiters").create(waiter_columns, pk="seq", not_null=set(waiter_columns) - {"seq"})
    db.table("lock_waiters").create_index(["waiter_id"], unique=True)
    db.table("lock_waiters").create_index(["name", "seq"])
    db.table("lock_waiters").create_index(["lease_id"])
    db.table("resources").create_index(["lease_id"])
    event_columns = {
        "revision": int,
        "seq": int,
        "type": str,
        "key": str,
        "value": bytes,
        "content_type": str,
        "version": int,
        "create_revision": int,
        "mod_revision": int,
        "create_time_us": int,
        "update_time_us": int,
        "lease_id": str,
    }
    db.table("events").create(event_columns, pk=("revision", "seq"), not_null=set(event_columns))
    db.table("events").create_index(["key", "revision"])
    # Changes before this migration were never recorded as events: Watch cannot replay them.
    db.execute(
        "INSERT INTO meta (name, value) SELECT 'compacted_revision', value FROM meta WHERE name = 'revision'"
    )


def _v3_page_token_secret(db: sqlite_utils.Database) -> None:
    """The store's own key for signing page tokens (`core.pagination`); never leaves the file."""
    db.table("store_secrets").create({"name": str, "value": bytes}, pk="name", not_null={"name", "value"})
    db.execute("INSERT INTO store_secrets (name, value) VALUES ('page_token', ?)", [new_page_token_secret()])


def _v4_lease_rows(db: sqlite_utils.Database) -> None:
    """A count of the lease rows kept by triggers, so a grant checks `--max-leases` without
    counting the table (`WriteTxn.lease_rows`). Leases are upserted, never replaced, so an
    insert trigger fires for new rows only."""
    db.execute("INSERT OR REPLACE INTO meta (name, value) SELECT 'lease_rows', count(*) FROM leases")
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS leases_counted_in AFTER INSERT ON leases BEGIN "
        "UPDATE meta SET value = value + 1 WHERE name = 'lease_rows'; END"
    )
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS leases_counted_out AFTER DELETE ON leases BEGIN "
        "UPDATE meta SET value = value - 1 WHERE name = 'lease_rows'; END"
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_resources,
    _v2_leases_locks_events,
    _v3_page_token_secret,
    _v4_lease_rows,
]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version of the database (0 for an empty one), read without writing."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def migrate(conn: sqlite3.Connection) -> list[Applied]:
    """Brings the database up to `SCHEMA_VERSION` and returns what it applied (each logged);
    refuses a database newer than this code."""
    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "meta" not in db.table_names():
            db.table("meta").create({"name": str, "value": int}, pk="name", not_null={"name", "value"})
            conn.execute("INSERT INTO meta (name, value) VALUES ('schema_version', 0)")
        current = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
        applied = apply_pending(current, MIGRATIONS, db)
        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (a full disk, an I/O error): keep the first error.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    log_applied("sqlite", applied)
    return applied
