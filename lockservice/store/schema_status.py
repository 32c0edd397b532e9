"""`lockservice migrate`: a store's schema version and pending migrations, and applying them.

The status opens the store read-only and changes nothing, whether or not a server runs on it.
Applying runs the same `migrate` a server runs at start (so a running, up-to-date server finds
nothing to do; replicas of a PostgreSQL store serialise on its advisory lock).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

from lockservice.store.migrations import Applied, migration_name
from lockservice.store.sqlite import schema as sqlite_schema

__all__ = [
    "SchemaError",
    "SchemaStatus",
    "migrate_postgres",
    "migrate_sqlite",
    "postgres_status",
    "sqlite_status",
]


class SchemaError(Exception):
    """The store cannot be read or migrated; the message is one line."""


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """The store's schema `current` version, the version this code brings it to (`latest`), and
    the (version, name) of each migration still to apply. `exists` is False for a SQLite file
    not yet created (a server's start creates it)."""

    current: int
    latest: int
    pending: tuple[tuple[int, str], ...]
    exists: bool = True


def _status(current: int, migrations: Sequence[Callable[[Any], None]], exists: bool = True) -> SchemaStatus:
    latest = len(migrations)
    pending = tuple((version + 1, migration_name(migrations[version])) for version in range(current, latest))
    return SchemaStatus(current=current, latest=latest, pending=pending, exists=exists)


def sqlite_status(path: str) -> SchemaStatus:
    if not os.path.isfile(path):
        return _status(0, sqlite_schema.MIGRATIONS, exists=False)
    uri = f"{Path(path).absolute().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30.0)) as conn:
            return _status(sqlite_schema.schema_version(conn), sqlite_schema.MIGRATIONS)
    except sqlite3.Error as error:
        raise SchemaError(f"cannot read {path}: {error}") from None


def migrate_sqlite(path: str) -> list[Applied]:
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=30.0)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            return sqlite_schema.migrate(conn)
    except sqlite3.Error as error:
        raise SchemaError(f"cannot migrate {path}: {error}") from None


def _postgres_error(action: str, error: psycopg.Error) -> SchemaError:
    return SchemaError(f"cannot {action} the PostgreSQL store: {error.__class__.__name__}: {error}")


def postgres_status(url: str) -> SchemaStatus:
    import psycopg  # the `postgres` extra: SQLite stores are read without it

    from lockservice.store.postgres import schema as postgres_schema

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            return _status(postgres_schema.schema_version(conn), postgres_schema.MIGRATIONS)
    except psycopg.Error as error:
        raise _postgres_error("read", error) from None


def migrate_postgres(url: str) -> list[Applied]:
    import psycopg  # the `postgres` extra: SQLite stores are migrated without it

    from lockservice.store.postgres import schema as postgres_schema

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            return postgres_schema.migrate(conn)
    except psycopg.Error as error:
        raise SchemaError(
            f"cannot migrate the PostgreSQL store: {error.__class__.__name__}: {error}"
        ) from None
