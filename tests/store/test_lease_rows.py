"""WriteTxn.lease_rows: the count of stored leases that `--max-leases` reads instead of counting
the table, on both stores: it follows grants, refreshes, ends and rolled-back bodies exactly."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lockservice.errors import LeaseNotFound
from lockservice.model import Lease
from lockservice.store.base import WriteTxn
from lockservice.store.sqlite import SqliteStore
from tests.conftest import BACKENDS
from tests.store.backends import open_store


def _lease(lease_id: str, expire_time_us: int = 10**18) -> Lease:
    return Lease(
        lease_id=lease_id, holder="h", ttl_seconds=10, grant_time_us=0, expire_time_us=expire_time_us
    )


def _counts(txn: WriteTxn) -> tuple[int, int]:
    return txn.lease_rows(), txn.live_lease_count(0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lease_rows_follow_grants_refreshes_ends_and_rollbacks(backend: str, tmp_path: Path) -> None:
    def grant(*ids: str) -> Any:
        def body(txn: WriteTxn) -> None:
            for lease_id in ids:
                txn.put_lease(_lease(lease_id))

        return body

    def grant_then_fail(txn: WriteTxn) -> None:
        txn.put_lease(_lease("doomed"))
        raise LeaseNotFound("refused after storing a lease")

    async def scenario() -> list[tuple[int, int]]:
        store = await open_store(backend, tmp_path)
        seen = []
        try:
            seen.append(await store.write(_counts))
            await store.write(grant("a", "b", "c"))
            seen.append(await store.write(_counts))
            await store.write(lambda txn: txn.put_lease(_lease("a", 10**18 + 1)))  # a refresh
            seen.append(await store.write(_counts))
            with pytest.raises(LeaseNotFound):
                await store.write(grant_then_fail)
            await store.write(lambda txn: txn.delete_lease("b"))
            await store.write(lambda txn: txn.delete_lease("never-granted"))
            seen.append(await store.write(_counts))
        finally:
            await store.close()
        return seen

    assert asyncio.run(scenario()) == [(0, 0), (3, 3), (3, 3), (2, 2)]


def test_a_database_from_before_the_count_is_counted_once_at_upgrade(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")

    async def rows() -> int:
        store = await SqliteStore.open(path)
        try:
            return await store.write(lambda txn: txn.lease_rows())
        finally:
            await store.close()

    assert asyncio.run(rows()) == 0
    with sqlite3.connect(path) as conn:  # back to schema version 3, as an older lockservice left it
        conn.execute("DROP TRIGGER leases_counted_in")
        conn.execute("DROP TRIGGER leases_counted_out")
        conn.execute("DELETE FROM meta WHERE name = 'lease_rows'")
        conn.execute("UPDATE meta SET value = 3 WHERE name = 'schema_version'")
        for index in range(5):
            conn.execute("INSERT INTO leases VALUES (?, 'h', 10, 0, ?, '')", (f"old-{index}", 10**18))
    assert asyncio.run(rows()) == 5
