"""The SQL both stores share (same tables, same statements but for the parameter mark).

- Pages cut by bytes as well as by count: list pages, version pages and Watch replays.
- Version retention: what `put` keeps of a key's history (`keep_version`).
- The prune margin: when the event log has overrun the watch window enough to prune
  (`events_overrun`).
- The reads a store answers straight from its tables (`SqlReads`).

A first read of a page fetches only the sizes of the next rows and picks where the page ends; a second
fetches the rows up to there. So no value past the cut is ever loaded, however large the page
size asked, and what a page holds is bounded by the memory budget (`lockservice.core.memory`).
Shared by both stores: `mark` is the dialect's parameter placeholder, `read` runs a query.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lockservice.model import RESOURCE_OVERHEAD_BYTES, ChangeEvent, Lease, LeaseListing, LockState, Resource
from lockservice.store.listings import lease_page
from lockservice.store.rows import (
    EVENT_COLUMNS,
    LEASE_COLUMNS,
    LOCK_COLUMNS,
    RESOURCE_COLUMNS,
    metadata_columns,
    prefix_upper_bound,
    resource_values,
    row_to_event,
    row_to_lease,
    row_to_lock,
    row_to_resource,
)

__all__ = [
    "POSTGRES",
    "SQLITE",
    "Dialect",
    "Execute",
    "Read",
    "SqlReads",
    "event_page",
    "events_overrun",
    "keep_version",
    "resource_page",
    "version_page",
]

Read = Callable[[str, tuple[Any, ...]], Awaitable[list[Any]]]
# Runs one statement in a write transaction (its result is not used).
Execute = Callable[[str, tuple[Any, ...]], object]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the stores' SQL: the parameter mark, the held-lock test (an
    integer column in SQLite, a boolean in PostgreSQL) and the statement that adds a retained
    version (SQLite replaces a version a rolled-back body left behind; PostgreSQL's bodies never
    see one)."""

    mark: str
    held: str
    empty_blob: str
    insert_version: str

    @property
    def metadata_columns(self) -> str:
        return metadata_columns(self.empty_blob)

    def marks(self, count: int) -> str:
        return ",".join([self.mark] * count)


SQLITE = Dialect(mark="?", held="held = 1", empty_blob="x''", insert_version="INSERT OR REPLACE")
POSTGRES = Dialect(mark="%s", held="held", empty_blob="''::bytea", insert_version="INSERT")

# Resource.footprint less its fixed overhead, in SQL (keys are ASCII). Only columns before the
# value: reading one after it walks every page of a large value.
_SIZE = "length(key) + length(value)"


def _kept(rows: Sequence[Any], max_bytes: int) -> int:
    """How many leading rows (`(position, size)`) make a page: every row, or up to and
    including the one whose footprint makes the total reach `max_bytes` (so at least one)."""
    if max_bytes <= 0:
        return len(rows)
    total = 0
    for count, row in enumerate(rows, start=1):
        total += row[1] + RESOURCE_OVERHEAD_BYTES
        if total >= max_bytes:
            return count
    return len(rows)


async def _sized_page(
    read: Read,
    mark: str,
    table: str,
    columns: str,
    where: str,
    params: tuple[Any, ...],
    order: str,
    limit: int,
    max_bytes: int,
) -> list[Resource]:
    """Rows of `table` matching `where` in the order of column `order` (`"version DESC"` for
    newest first): at most `limit`, and with `max_bytes` cut by footprint (`_kept`). The cut row's
    `order` value bounds the second read, so no value past it is loaded."""
    if max_bytes > 0:
        position = order.split(maxsplit=1)[0]
        sizes = await read(
            f"SELECT {position}, {_SIZE} FROM {table} WHERE {where} ORDER BY {order} LIMIT {mark}",
            (*params, limit),
        )
        limit = _kept(sizes, max_bytes)
        if not limit:
            return []
        bound = "<=" if order == position else ">="  # up to the cut, in the page's direction
        where, params = f"{where} AND {position} {bound} {mark}", (*params, sizes[limit - 1][0])
    rows = await read(
        f"SELECT {columns} FROM {table} WHERE {where} ORDER BY {order} LIMIT {mark}", (*params, limit)
    )
    return [row_to_resource(row) for row in rows]


async def resource_page(
    read: Read, mark: str, columns: str, prefix: str, start_after: str, limit: int, max_bytes: int
) -> list[Resource]:
    """Current resources under `prefix` after `start_after` in key order: at most `limit`, and
    with `max_bytes` cut by footprint (`_kept`)."""
    if prefix:
        where = f"key >= {mark} AND key > {mark} AND key < {mark}"
        params: tuple[Any, ...] = (prefix, start_after, prefix_upper_bound(prefix))
    else:
        where, params = f"key > {mark}", (start_after,)
    return await _sized_page(read, mark, "resources", columns, where, params, "key", limit, max_bytes)


async def version_page(
    read: Read,
    mark: str,
    columns: str,
    key: str,
    create_revision: int,
    below_version: int,
    limit: int,
    max_bytes: int,
) -> list[Resource]:
    """Retained versions of one incarnation below `below_version`, newest first, cut as
    `resource_page` is."""
    where = f"key = {mark} AND create_revision = {mark} AND version < {mark}"
    params = (key, create_revision, below_version)
    return await _sized_page(
        read, mark, "resource_versions", columns, where, params, "version DESC", limit, max_bytes
    )


async def event_page(
    read: Read, mark: str, after: int, key: str, prefix: bool, limit: int, max_bytes: int
) -> list[ChangeEvent]:
    """Retained events after revision `after` on `key` (or under it when `prefix`), in order:
    about `limit` events and, with `max_bytes`, about that many bytes, in whole revisions (the
    revision a cut falls in is finished, so reading on from the page's last revision misses
    nothing)."""
    params: tuple[Any, ...]
    if not prefix:
        where, params = f"key = {mark}", (key,)
    elif not key:
        where, params = "1 = 1", ()
    else:
        where, params = f"key >= {mark} AND key < {mark}", (key, prefix_upper_bound(key))
    sizes = await read(
        f"SELECT revision, {_SIZE} FROM events WHERE {where} AND revision > {mark} "
        f"ORDER BY revision, seq LIMIT {mark}",
        (*params, after, limit),
    )
    if not sizes:
        return []
    last_revision = sizes[_kept(sizes, max_bytes) - 1][0]
    rows = await read(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} AND revision > {mark} AND revision <= {mark} "
        "ORDER BY revision, seq",
        (*params, after, last_revision),
    )
    return [row_to_event(row) for row in rows]


def keep_version(execute: Execute, dialect: Dialect, resource: Resource, history: int) -> None:
    """Retains `resource` as a version of its key, and only the newest `history` versions of
    its incarnation: a version 1 starts a new incarnation, whose history must not include an
    earlier one's. Runs inside the body's transaction, after the resource row is written."""
    mark = dialect.mark
    if resource.version == 1:
        execute(f"DELETE FROM resource_versions WHERE key = {mark}", (resource.key,))
    execute(
        f"{dialect.insert_version} INTO resource_versions ({RESOURCE_COLUMNS}) VALUES ({dialect.marks(9)})",
        resource_values(resource),
    )
    oldest_kept = resource.version - history + 1
    if oldest_kept > 1:
        execute(
            f"DELETE FROM resource_versions WHERE key = {mark} AND version < {mark}",
            (resource.key, oldest_kept),
        )


def events_overrun(revision: int, compacted: int, watch_history: int) -> bool:
    """Whether the event log holds enough beyond the watch window (`watch_history` revisions
    after `compacted`) to prune: a margin of a tenth of the window (at least 16 revisions), so
    the cost of pruning is amortised over many commits instead of paid at each."""
    margin = max(16, watch_history // 10)
    return revision - compacted > watch_history + margin


class SqlReads(abc.ABC):
    """The reads of `Store` that both stores answer with the same query on their tables. A store
    sets `_dialect` and implements `_read_rows`."""

    _dialect: Dialect

    @abc.abstractmethod
    async def _read_rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """The rows of one query, outside any write; StoreUnavailable when the store cannot
        answer (closed, unreachable, failing)."""

    async def answered(self, request_key: str) -> bool:
        mark = self._dialect.mark
        return bool(
            await self._read_rows(f"SELECT 1 FROM request_answers WHERE request_id = {mark}", (request_key,))
        )

    async def get_version(self, key: str, create_revision: int, version: int) -> Resource | None:
        mark = self._dialect.mark
        rows = await self._read_rows(
            f"SELECT {RESOURCE_COLUMNS} FROM resource_versions "
            f"WHERE key = {mark} AND version = {mark} AND create_revision = {mark}",
            (key, version, create_revision),
        )
        return row_to_resource(rows[0]) if rows else None

    async def list_resources(
        self, prefix: str, start_after: str, limit: int, *, with_values: bool, max_bytes: int = 0
    ) -> list[Resource]:
        columns = RESOURCE_COLUMNS if with_values else self._dialect.metadata_columns
        return await resource_page(
            self._read_rows,
            self._dialect.mark,
            columns,
            prefix,
            start_after,
            limit,
            max_bytes if with_values else 0,
        )

    async def list_versions(
        self,
        key: str,
        create_revision: int,
        below_version: int,
        limit: int,
        *,
        with_values: bool,
        max_bytes: int = 0,
    ) -> list[Resource]:
        columns = RESOURCE_COLUMNS if with_values else self._dialect.metadata_columns
        return await version_page(
            self._read_rows,
            self._dialect.mark,
            columns,
            key,
            create_revision,
            below_version,
            limit,
            max_bytes if with_values else 0,
        )

    async def events_after(
        self, revision: int, key: str, prefix: bool, limit: int, max_bytes: int = 0
    ) -> list[ChangeEvent]:
        return await event_page(self._read_rows, self._dialect.mark, revision, key, prefix, limit, max_bytes)

    async def list_leases(
        self, id_prefix: str, holder: str, start_after: str, limit: int, now_us: int
    ) -> list[LeaseListing]:
        return await lease_page(
            self._read_rows, self._dialect.mark, id_prefix, holder, start_after, limit, now_us
        )

    async def get_lease(self, lease_id: str) -> Lease | None:
        mark = self._dialect.mark
        rows = await self._read_rows(
            f"SELECT {LEASE_COLUMNS} FROM leases WHERE lease_id = {mark}", (lease_id,)
        )
        return row_to_lease(rows[0]) if rows else None

    async def lease_lock_names(self, lease_id: str) -> list[str]:
        dialect = self._dialect
        rows = await self._read_rows(
            f"SELECT name FROM locks WHERE lease_id = {dialect.mark} AND {dialect.held} ORDER BY name",
            (lease_id,),
        )
        return [row[0] for row in rows]

    async def lease_resource_keys(self, lease_id: str) -> list[str]:
        mark = self._dialect.mark
        rows = await self._read_rows(
            f"SELECT key FROM resources WHERE lease_id = {mark} ORDER BY key", (lease_id,)
        )
        return [row[0] for row in rows]

    async def get_lock(self, name: str) -> LockState | None:
        mark = self._dialect.mark
        rows = await self._read_rows(f"SELECT {LOCK_COLUMNS} FROM locks WHERE name = {mark}", (name,))
        return row_to_lock(rows[0]) if rows else None
