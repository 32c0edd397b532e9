"""The SQLite schema and its versioned migrations, applied in order at start.

Each migration runs once, inside the transaction that records it, so a crash mid-migration
leaves the previous schema intact.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

from lockservice.errors import StoreUnavailable

__all__ = ["SCHEMA_VERSION", "migrate"]


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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1_resources]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Brings the database up to `SCHEMA_VERSION`; refuses a database newer than this code."""
    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "meta" not in db.table_names():
            db.table("meta").create({"name": str, "value": int}, pk="name", not_null={"name", "value"})
            conn.execute("INSERT INTO meta (name, value) VALUES ('schema_version', 0)")
        current = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"the database schema is version {current}, newer than this lockservice "
                f"understands ({SCHEMA_VERSION}); upgrade lockservice"
            )
        for version in range(current, SCHEMA_VERSION):
            MIGRATIONS[version](db)
        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
