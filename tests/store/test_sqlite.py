"""SqliteStore on a real file: group commit, savepoint isolation, persistence, exclusivity.

Backend-specific because group commit and the single-process file lock are SQLite's design.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from lockservice.errors import StoreUnavailable
from lockservice.store.base import WriteTxn
from lockservice.store.sqlite import SqliteStore
from tests.store.contract.bodies import put as _put


def test_concurrent_writers_share_commits_and_never_see_locked(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        try:
            results = await asyncio.gather(*(store.write(_put(f"k{i}", b"v")) for i in range(64)))
            assert sorted(r.mod_revision for r in results) == list(range(1, 65))
            assert store.committed_bodies == 64
            assert store.commits < 64, "64 queued writes should be group-committed"
            assert await store.current_revision() == 64
        finally:
            await store.close()

    asyncio.run(scenario())


def test_revision_and_data_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")

    async def first() -> None:
        store = await SqliteStore.open(path)
        await store.write(_put("k", b"1"))
        await store.write(_put("k", b"2"))
        await store.close()

    async def second() -> None:
        store = await SqliteStore.open(path)
        try:
            assert await store.current_revision() == 2
            resource = await store.write(_put("k", b"3"))
            assert (resource.version, resource.mod_revision, resource.value) == (3, 3, b"3")
        finally:
            await store.close()

    asyncio.run(first())
    asyncio.run(second())


def test_a_second_process_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")

    async def scenario() -> None:
        store = await SqliteStore.open(path)
        try:
            with pytest.raises(StoreUnavailable, match="in use by another lockservice process"):
                await SqliteStore.open(path)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="directory of the database does not exist"):
        asyncio.run(SqliteStore.open(str(tmp_path / "nope" / "db.sqlite")))


def test_reads_from_memory_follow_every_commit(tmp_path: Path) -> None:
    """A read after a write, a delete or an expiry sees it, whether the key was cached or not."""

    def delete(key: str) -> Callable[[WriteTxn], None]:
        def body(txn: WriteTxn) -> None:
            txn.next_revision()
            txn.delete(key)

        return body

    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        try:
            await store.write(_put("k", b"1"))
            first = await store.get("k")  # now cached
            assert first is not None and first.value == b"1"
            await store.write(_put("k", b"2"))
            second = await store.get("k")
            assert second is not None and (second.value, second.version) == (b"2", 2)
            await store.write(delete("k"))
            assert await store.get("k") is None
            await store.write(_put("k", b"3"))
            third = await store.get("k")
            assert third is not None and (third.value, third.version) == (b"3", 1)
            # Concurrent writes in one batch: the last one is what a read sees.
            await asyncio.gather(*(store.write(_put("k", str(n).encode())) for n in range(10)))
            last = await store.get("k")
            assert last is not None and (last.value, last.version) == (b"9", 11)
        finally:
            await store.close()
        reopened = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        try:
            again = await reopened.get("k")
            assert again is not None and again.value == b"9"
        finally:
            await reopened.close()

    asyncio.run(scenario())


def _limit_pages(pages: int) -> Callable[[WriteTxn], None]:
    """A body that caps the database at `pages` pages (at least its current size) on the writer's
    connection: SQLite then answers SQLITE_FULL as it does on a full disk."""

    def body(txn: WriteTxn) -> None:
        cast(Any, txn)._conn.execute(f"PRAGMA max_page_count = {pages}")

    return body


def test_a_full_database_refuses_writes_keeps_reads_and_recovers(tmp_path: Path) -> None:
    """The disk-full path without mounting a small disk (tests/e2e/test_disk_full.py fills a
    real one where mounting is allowed)."""

    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        try:
            await store.write(_put("kept", b"v"))
            await store.write(_limit_pages(1))
            with pytest.raises(StoreUnavailable, match=r"^the store's disk is full") as caught:
                for index in range(64):
                    await store.write(_put(f"k{index}", b"x" * 32 * 1024))
            assert caught.value.metadata == {"cause": "DISK_FULL"}
            listed = await store.list_resources("", "", 10, with_values=True)
            assert [(r.key, r.value) for r in listed] == [("kept", b"v")]
            await store.write(_limit_pages(1_000_000))
            after = await store.write(_put("after", b"y"))
            assert after.mod_revision == 2
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_database_from_before_signed_page_tokens_gets_a_secret_once(tmp_path: Path) -> None:
    """Schema version 3 adds the page-token secret to an existing file; it then never changes."""
    path = str(tmp_path / "db.sqlite")

    async def secret() -> bytes:
        store = await SqliteStore.open(path)
        try:
            await store.write(_put("k", b"v"))
            return store.page_token_secret
        finally:
            await store.close()

    first = asyncio.run(secret())
    assert len(first) == 32
    assert asyncio.run(secret()) == first
    with sqlite3.connect(path) as conn:  # back to schema version 2, as an older lockservice left it
        conn.execute("DROP TABLE store_secrets")
        conn.execute("UPDATE meta SET value = 2 WHERE name = 'schema_version'")
    upgraded = asyncio.run(secret())
    assert len(upgraded) == 32 and upgraded != first
