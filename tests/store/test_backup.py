"""lockservice.store.backup in process: the floor arithmetic, both stores honouring a bump, and
every refusal of backup, restore and bump (the whole flow through the CLI and a live server is
tests/e2e/test_backup_restore.py)."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lockservice.core.locks import new_lock_state, take
from lockservice.model import Lease, LockState, LockWaiter, Resource
from lockservice.store.backup import (
    BackupError,
    Bumped,
    backup_sqlite,
    bump_postgres,
    bump_sqlite,
    raised_floor,
    restore_sqlite,
)
from lockservice.store.base import Store, WriteTxn
from lockservice.store.postgres import PostgresStore
from lockservice.store.sqlite import SqliteStore
from tests.conftest import create_database


def test_the_floor_is_the_clock_unless_the_store_holds_more_or_a_bump_asks_for_more() -> None:
    assert raised_floor(3, now_us=1_000, bump=0) == 1_000
    assert raised_floor(3, now_us=1_000, bump=10) == 1_000
    assert raised_floor(5_000, now_us=1_000, bump=0) == 5_000  # a clock behind: never below the store
    assert raised_floor(5_000, now_us=1_000, bump=10) == 5_010
    with pytest.raises(ValueError, match="bump must not be negative"):
        raised_floor(3, now_us=1_000, bump=-1)


def _lease(lease_id: str) -> Lease:
    now = time.time_ns() // 1000
    return Lease(
        lease_id=lease_id, holder="h", ttl_seconds=60, grant_time_us=now, expire_time_us=now + 60_000_000
    )


def _hold(name: str, token: int) -> Any:
    """A body that stores lock `name` as held with `token`, queues a waiter for it and records a
    change (an event at revision 1)."""

    def body(txn: WriteTxn) -> None:
        revision = txn.next_revision()
        now = txn.now_us
        txn.put(Resource("k", b"v", "", 1, revision, revision, now, now))
        txn.put_lease(_lease("l1"))
        txn.put_lock(
            LockState(
                name=name,
                held=True,
                holder="h",
                lease_id="l1",
                token=token,
                acquire_time_us=txn.now_us,
                lock_delay_us=0,
                available_time_us=0,
            )
        )
        txn.add_waiter(
            LockWaiter(
                waiter_id="w1", name=name, seq=0, holder="w", lease_id="", ttl_seconds=10, lock_delay_us=0
            )
        )

    return body


def _after_bump(txn: WriteTxn) -> tuple[int, int, int, int, int]:
    """The floor, the next revision, the token a new name and the held name get, and the waiters."""
    floor = txn.token_floor
    revision = txn.next_revision()
    fresh = take(txn, new_lock_state("fresh"), _lease("l2"), "h", 0, "g1").token
    held = txn.get_lock("held")
    assert held is not None
    again = take(txn, held, _lease("l2"), "h", 0, "g2").token
    return floor, revision, fresh, again, txn.count_waiters("held")


def test_both_stores_honour_a_bump_for_tokens_revisions_and_watch(backend: str, tmp_path: Path) -> None:
    target = str(tmp_path / "db.sqlite") if backend == "sqlite" else create_database()

    async def open_store() -> Store:
        if backend == "sqlite":
            return await SqliteStore.open(target)
        return await PostgresStore.open(target)

    async def scenario() -> Bumped:
        store = await open_store()
        try:
            await store.write(_hold("held", 7))
            assert await store.current_revision() == 1
        finally:
            await store.close()
        bumped = bump_sqlite(target) if backend == "sqlite" else bump_postgres(target)
        store = await open_store()
        try:
            floor, revision, fresh, again, waiters = await store.write(_after_bump)
            assert floor == bumped.token_floor
            assert revision == bumped.revision + 1
            assert (fresh, again) == (floor + 1, floor + 1)
            assert waiters == 0  # the backup's queue belonged to calls that are gone
            assert await store.compacted_revision() == bumped.revision
            assert await store.events_after(0, "", True, 10) == []
        finally:
            await store.close()
        return bumped

    bumped = asyncio.run(scenario())
    assert (bumped.previous_token, bumped.previous_revision) == (7, 1)
    assert bumped.token_floor >= bumped.now_us > 7
    assert bumped.revision >= bumped.now_us
    assert not bumped.clock_behind


def _store_with_lock(path: Path, token: int) -> None:
    async def scenario() -> None:
        store = await SqliteStore.open(str(path))
        try:
            await store.write(_hold("held", token))
        finally:
            await store.close()

    asyncio.run(scenario())


def _token_of(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (token,) = conn.execute("SELECT token FROM locks WHERE name = 'held'").fetchone()
    return int(token)


def _refusal(call: Callable[..., object], *paths: Path) -> str:
    with pytest.raises(BackupError) as refused:
        call(*(str(path) for path in paths))
    return str(refused.value)


def test_restore_replaces_a_database_and_its_stale_wal_whole(tmp_path: Path) -> None:
    db, backup = tmp_path / "lockservice.db", tmp_path / "backup.db"
    _store_with_lock(db, 1)
    backup_sqlite(str(db), str(backup))
    # The database to replace has changes only in its WAL, as after kill -9: replayed onto the
    # restored file they would corrupt it, so restore removes them with the old file.
    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(db, isolation_level=None) as writer:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE locks SET token = 99")
        writer.execute("CREATE TABLE filler (x)")
        writer.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 1000,)] * 200)
        for suffix in ("", "-wal"):
            shutil.copy(f"{db}{suffix}", old / f"lockservice.db{suffix}")
    for suffix in ("", "-wal"):
        shutil.copy(old / f"lockservice.db{suffix}", f"{db}{suffix}")
    assert os.path.getsize(f"{db}-wal") > 100_000

    with pytest.raises(BackupError) as refused:
        restore_sqlite(str(backup), str(db))
    assert str(refused.value) == f"the database {db} exists: pass --force to replace it with the backup"
    bumped = restore_sqlite(str(backup), str(db), force=True)

    assert not os.path.exists(f"{db}-wal")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert "filler" not in {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert _token_of(db) == 1  # the backup's row; the floor lifts the next token above the 99
    assert bumped.previous_token == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "backup.db",
        "lockservice.db",
        "lockservice.db.lock",
        "old",
    ]


def test_restore_onto_no_database_needs_no_force(tmp_path: Path) -> None:
    db, backup = tmp_path / "lockservice.db", tmp_path / "backup.db"
    _store_with_lock(db, 4)
    backup_sqlite(str(db), str(backup))
    fresh = tmp_path / "fresh" / "lockservice.db"
    with pytest.raises(BackupError) as refused:
        restore_sqlite(str(backup), str(fresh))
    assert str(refused.value) == f"the directory {fresh.parent} does not exist"
    fresh.parent.mkdir()
    bumped = restore_sqlite(str(backup), str(fresh), bump=10**16)
    assert bumped.token_floor == 4 + 10**16  # a bump above the clock wins
    assert bumped.revision == 1 + 10**16
    assert _token_of(fresh) == 4


def test_nothing_touches_a_database_a_server_holds(tmp_path: Path) -> None:
    db, backup = tmp_path / "lockservice.db", tmp_path / "backup.db"
    _store_with_lock(db, 1)
    backup_sqlite(str(db), str(backup))

    async def scenario() -> None:
        store = await SqliteStore.open(str(db))
        try:
            in_use = f"the database {db} is in use by a running lockservice server: stop it first"
            assert _refusal(functools.partial(restore_sqlite, force=True), backup, db) == in_use
            assert _refusal(bump_sqlite, db) == in_use
            backup_sqlite(str(db), str(tmp_path / "online.db"))  # a backup is fine meanwhile
        finally:
            await store.close()

    asyncio.run(scenario())
    assert _token_of(db) == 1


def test_backup_refuses_what_it_cannot_copy(tmp_path: Path) -> None:
    db, out = tmp_path / "lockservice.db", tmp_path / "out.db"
    assert _refusal(backup_sqlite, db, out) == f"the database {db} does not exist"
    _store_with_lock(db, 1)
    assert _refusal(backup_sqlite, db, db) == f"{db} is the database itself: choose another file"
    elsewhere = tmp_path / "no" / "out.db"
    assert _refusal(backup_sqlite, db, elsewhere) == f"the directory {elsewhere.parent} does not exist"
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    assert _refusal(backup_sqlite, other, out) == (
        f"the database {other} is not a lockservice database: it has no lockservice tables"
    )
    # An existing backup is replaced whole, never left half written.
    out.write_bytes(b"an older backup")
    summary = backup_sqlite(str(db), str(out))
    assert summary.revision == 1
    assert summary.size_bytes == out.stat().st_size
    assert _token_of(out) == 1
    assert [path.name for path in tmp_path.iterdir() if "part" in path.name] == []


def test_a_backup_newer_than_this_lockservice_is_refused(tmp_path: Path) -> None:
    db, backup = tmp_path / "lockservice.db", tmp_path / "backup.db"
    _store_with_lock(db, 1)
    backup_sqlite(str(db), str(backup))
    with sqlite3.connect(backup) as conn:
        conn.execute("UPDATE meta SET value = 99 WHERE name = 'schema_version'")
    with pytest.raises(BackupError) as refused:
        restore_sqlite(str(backup), str(db), force=True)
    assert str(refused.value).startswith(
        f"{backup} is not a lockservice backup: its schema version 99 is newer than this lockservice reads"
    )
    assert _token_of(db) == 1


@pytest.mark.backend_specific("postgres", reason="PostgreSQL's bump")
def test_bump_postgres_says_why_it_cannot_connect(backend: str) -> None:
    with pytest.raises(BackupError) as refused:
        bump_postgres("postgresql://postgres@127.0.0.1:1/none")
    assert str(refused.value).startswith("cannot bump the PostgreSQL database: ")
    assert "\n" not in str(refused.value)


@pytest.mark.backend_specific("postgres", reason="sessions connected to the database show a server runs")
def test_bump_postgres_refuses_while_another_session_is_connected(backend: str) -> None:
    url = create_database()
    with psycopg.connect(url, autocommit=True):
        with pytest.raises(BackupError) as refused:
            bump_postgres(url)
        assert str(refused.value).startswith("1 other session is connected to database lockservice_test_")
        bumped = bump_postgres(url, force=True)  # on a database no server ever used: the schema too
    assert bumped.previous_token == 0
    assert bumped.token_floor == bumped.now_us
