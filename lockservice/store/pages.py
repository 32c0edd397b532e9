"""Reads that return pages cut by bytes as well as by count: list pages and Watch replays.

A first read fetches only the sizes of the next rows and picks where the page ends; a second
fetches the rows up to there. So no value past the cut is ever loaded, however large the page
size asked, and what a page holds is bounded by the memory budget (`lockservice.core.memory`).
Shared by both stores: `mark` is the dialect's parameter placeholder, `read` runs a query.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lockservice.model import RESOURCE_OVERHEAD_BYTES, ChangeEvent, Resource
from lockservice.store.rows import EVENT_COLUMNS, prefix_upper_bound, row_to_event, row_to_resource

__all__ = ["Read", "event_page", "resource_page", "version_page"]

Read = Callable[[str, tuple[Any, ...]], Awaitable[list[Any]]]

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
