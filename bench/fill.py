"""Filling the store before a run, so a run can measure a large store: keys over gRPC, leases
through the store's own write path.

Keys go in as the service takes them (Transact batches of 128 puts). Leases are written before
the server starts, by the store the server itself opens (`SqliteStore` / `PostgresStore`) with
the core's `grant_in`, 1,000 per transaction: the same rows, ids and lease-count bookkeeping a
GrantLease writes, but 300,000 in 81 s on the loaded 2-core development machine, where
GrantLease calls ran at about 1,000/s there. They live for a day, so none expires
during a run.
"""

from __future__ import annotations

import asyncio
import functools

from lockservice.core.leases.grant import grant_in
from lockservice.store.base import Store, WriteTxn
from lockservice.store.postgres import PostgresStore
from lockservice.store.sqlite import SqliteStore

__all__ = ["FILL_LEASE_TTL", "fill_leases"]

FILL_LEASE_TTL = 24 * 3600  # the server's default --max-lease-ttl
_LEASES_PER_COMMIT = 1_000  # 10,000 a commit fell to 200 leases/s past 250,000 rows; 1,000 keeps ~3,500


def fill_leases(location: str, count: int) -> None:
    """Grants `count` live leases (holder "bench-fill", TTL a day) in the store at `location`
    (a SQLite file or a PostgreSQL URL), which no server may have open yet (SQLite)."""
    asyncio.run(_fill(location, count))


async def _fill(location: str, count: int) -> None:
    store: Store
    if location.startswith("postgresql://"):
        store = await PostgresStore.open(location)
    else:
        store = await SqliteStore.open(location)
    try:
        for start in range(0, count, _LEASES_PER_COMMIT):
            batch = min(_LEASES_PER_COMMIT, count - start)
            await store.write(functools.partial(_grant, count=batch))
    finally:
        await store.close()


def _grant(txn: WriteTxn, count: int) -> None:
    for _ in range(count):
        grant_in(txn, FILL_LEASE_TTL, "bench-fill")
