"""The reads of the SQLite store: on their own connection, which in WAL mode never waits for the
writer and always sees the last committed state; current states from memory when cached
(`ReadCache`), queue lengths from the writer's last commit (the queues live in its connection)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

from lockservice.errors import StoreUnavailable
from lockservice.model import Resource
from lockservice.store.read_cache import ReadCache
from lockservice.store.rows import RESOURCE_COLUMNS, row_to_resource
from lockservice.store.sql import SqlReads
from lockservice.store.sqlite.writer import Writer

__all__ = ["SqliteReads"]


def _now_us() -> int:
    return time.time_ns() // 1000


class SqliteReads(SqlReads):
    """The read half of `SqliteStore` (which opens the connection and keeps the state below)."""

    _path: str
    _reader: sqlite3.Connection | None
    _closed: bool
    _cache: ReadCache
    _writer: Writer
    _revision: int
    _compacted: int

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self._reader is None or self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the database could not be read: {error.__class__.__name__}") from None

    async def _read_rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self._read(sql, params)

    async def get(self, key: str) -> Resource | None:
        known, cached = self._cache.lookup(key)
        if known:
            return cached
        rows = self._read(f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE key = ?", (key,))
        if not rows:
            return None
        resource = row_to_resource(rows[0])
        self._cache.offer(key, resource.mod_revision, resource)
        return resource

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        # From the file, not only from memory: the writer's prune commits (events deleted and
        # this row raised together) before its batch is settled on the loop, and a reader that
        # has just missed pruned events must see the compaction that removed them.
        stored: int = self._read("SELECT value FROM meta WHERE name = 'compacted_revision'", ())[0][0]
        return max(self._compacted, stored)

    async def waiter_count(self, name: str) -> int:
        return self._writer.waiter_counts.get(name, 0)

    async def next_deadline(self) -> int | None:
        deadlines = [self._read("SELECT min(expire_time_us) FROM leases", ())[0][0]]
        queued = self._writer.waiter_counts
        if queued:
            # The ends of lock-delays that waiters wait out.
            deadlines.append(
                self._read(
                    "SELECT min(available_time_us) FROM locks WHERE name IN (SELECT value FROM json_each(?)) "
                    "AND held = 0 AND available_time_us > 0",
                    (json.dumps(list(queued)),),
                )[0][0]
            )
        present = [deadline for deadline in deadlines if deadline is not None]
        return min(present) if present else None

    async def stats(self) -> dict[str, int]:
        """What the store holds, for the metrics gauges (`Capabilities.stats`)."""
        now = _now_us()
        leases = self._read("SELECT count(*) FROM leases WHERE expire_time_us > ?", (now,))[0][0]
        held = self._read("SELECT count(*) FROM locks WHERE held = 1", ())[0][0]
        waiters = sum(self._writer.waiter_counts.values())
        pages = self._read("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()", ())[
            0
        ][0]
        wal = os.path.getsize(self._path + "-wal") if os.path.exists(self._path + "-wal") else 0
        return {"leases": leases, "locks_held": held, "waiters": waiters, "size_bytes": pages + wal}

    def now_us(self) -> int:
        return _now_us()
