"""The reads of the PostgreSQL store that are its own (the shared ones are `SqlReads`; the
statistics are in `store`, as they use its clock). Every read asks the database, as other
replicas write too, and waits for a connection no longer than the call's store deadline
(`PostgresStore._read_rows`)."""

from __future__ import annotations

from lockservice.model import LockListing, Resource
from lockservice.store.listings import lock_page, table_queues
from lockservice.store.rows import RESOURCE_COLUMNS, row_to_resource
from lockservice.store.sql import SqlReads

__all__ = ["PostgresReads"]


class PostgresReads(SqlReads):
    """The read half of `PostgresStore`, which supplies `_read_rows`."""

    async def get(self, key: str) -> Resource | None:
        rows = await self._read_rows(f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE key = %s", (key,))
        return row_to_resource(rows[0]) if rows else None

    async def current_revision(self) -> int:
        revision: int = (await self._read_rows("SELECT value FROM meta WHERE name = 'revision'", ()))[0][0]
        return revision

    async def compacted_revision(self) -> int:
        compacted: int = (
            await self._read_rows("SELECT value FROM meta WHERE name = 'compacted_revision'", ())
        )[0][0]
        return compacted

    async def waiter_count(self, name: str) -> int:
        count: int = (await self._read_rows("SELECT count(*) FROM lock_waiters WHERE name = %s", (name,)))[0][
            0
        ]
        return count

    async def next_deadline(self) -> int | None:
        rows = await self._read_rows(
            "SELECT min(t) FROM (SELECT min(expire_time_us) AS t FROM leases UNION ALL "
            "SELECT min(available_time_us) FROM locks WHERE NOT held AND available_time_us > 0 "
            "AND EXISTS (SELECT 1 FROM lock_waiters w WHERE w.name = locks.name)) AS deadlines",
            (),
        )
        deadline: int | None = rows[0][0]
        return deadline

    async def list_locks(
        self, prefix: str, start_after: str, limit: int, *, include_queue: bool
    ) -> list[LockListing]:
        queues = table_queues(self._read_rows, "%s")
        return await lock_page(
            self._read_rows, "%s", queues, prefix, start_after, limit, include_queue=include_queue
        )
