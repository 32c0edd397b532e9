"""The operator's listings of locks and leases (ListLocks, ListLeases), shared by both stores.

Each is a page in key order read with a few statements: the page's rows, then per row the
little that hangs on it (a lock's queue, a lease's first locks and resources), each bounded by a
count so a page's size is bounded whatever the data. `mark` is the dialect's parameter
placeholder and `read` runs a query, as in `lockservice.store.sql`. The statements are
separate reads: a lock released between two of them is listed as the first read saw it.

Where a lock's queue lives is the store's business (a table PostgreSQL replicas share; SQLite's
writer connection only), so the store passes a `Queues` to read it; `table_queues` reads the
shared table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from lockservice.model import LeaseListing, LockListing, LockView, LockWaiter
from lockservice.store.rows import (
    LEASE_COLUMNS,
    LOCK_COLUMNS,
    WAITER_COLUMNS,
    prefix_upper_bound,
    row_to_lease,
    row_to_lock,
    row_to_waiter,
)

if TYPE_CHECKING:
    # Annotations only: `store.sql` (the shared reads) lists leases with this module.
    from lockservice.store.sql import Read

__all__ = ["ITEMS_SHOWN", "QueueOf", "Queues", "lease_page", "lock_page", "table_queues"]

# The most queued callers listed per lock, and lock names or resource keys per lease.
ITEMS_SHOWN = 100

# Of each named lock: how many queue, and (when asked) the first `ITEMS_SHOWN` of them in order.
QueueOf = tuple[int, tuple[LockWaiter, ...]]
Queues = Callable[[Sequence[str], bool], Awaitable[dict[str, QueueOf]]]


def table_queues(read: Read, mark: str) -> Queues:
    """`Queues` read from the `lock_waiters` table through `read`."""

    async def queues(
        names: Sequence[str], include_queue: bool
    ) -> dict[str, tuple[int, tuple[LockWaiter, ...]]]:
        found = {}
        for name in names:
            count = int((await read(f"SELECT count(*) FROM lock_waiters WHERE name = {mark}", (name,)))[0][0])
            queue: tuple[LockWaiter, ...] = ()
            if include_queue and count:
                sql = (
                    f"SELECT {WAITER_COLUMNS} FROM lock_waiters WHERE name = {mark} ORDER BY seq LIMIT {mark}"
                )
                rows = await read(sql, (name, ITEMS_SHOWN))
                queue = tuple(row_to_waiter(row) for row in rows)
            found[name] = (count, queue)
        return found

    return queues


def _range(column: str, mark: str, prefix: str, start_after: str) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause for `column` starting with `prefix`, after `start_after`."""
    where, params = f"{column} > {mark}", [start_after]
    if prefix:
        where += f" AND {column} >= {mark} AND {column} < {mark}"
        params += [prefix, prefix_upper_bound(prefix)]
    return where, tuple(params)


async def lock_page(
    read: Read, mark: str, queues: Queues, prefix: str, start_after: str, limit: int, *, include_queue: bool
) -> list[LockListing]:
    """At most `limit` locks named `prefix...` after `start_after`, in name order, each with its
    holder's lease deadline (0 when free or the lease is gone), its queue length and, with
    `include_queue`, its first `ITEMS_SHOWN` queued callers."""
    where, params = _range("name", mark, prefix, start_after)
    rows = await read(
        f"SELECT {LOCK_COLUMNS}, "
        "(SELECT e.expire_time_us FROM leases e WHERE e.lease_id = locks.lease_id) "
        f"FROM locks WHERE {where} ORDER BY name LIMIT {mark}",
        (*params, limit),
    )
    states = [(row_to_lock(row[:-1]), int(row[-1] or 0)) for row in rows]
    queued = await queues([state.name for state, _ in states], include_queue)
    listings = []
    for state, expire_us in states:
        waiters, queue = queued[state.name]
        view = LockView(state=state, expire_time_us=expire_us if state.held else 0, waiters=waiters)
        listings.append(LockListing(view=view, queue=queue))
    return listings


async def lease_page(
    read: Read, mark: str, id_prefix: str, holder: str, start_after: str, limit: int, now_us: int
) -> list[LeaseListing]:
    """At most `limit` leases live at `now_us` whose ids start with `id_prefix` (an owner tag)
    and, when `holder` is set, granted to `holder`, in id order after `start_after`; each with
    its first `ITEMS_SHOWN` held lock names and resource keys."""
    where, params = _range("lease_id", mark, id_prefix, start_after)
    where += f" AND expire_time_us > {mark}"
    params += (now_us,)
    if holder:
        where += f" AND holder = {mark}"
        params += (holder,)
    rows = await read(
        f"SELECT {LEASE_COLUMNS} FROM leases WHERE {where} ORDER BY lease_id LIMIT {mark}", (*params, limit)
    )
    listings = []
    for row in rows:
        lease = row_to_lease(row)
        # `held` is an integer in SQLite and a boolean in PostgreSQL: compared as a truth value.
        names = await read(
            f"SELECT name FROM locks WHERE lease_id = {mark} AND held ORDER BY name LIMIT {mark}",
            (lease.lease_id, ITEMS_SHOWN),
        )
        keys = await read(
            f"SELECT key FROM resources WHERE lease_id = {mark} ORDER BY key LIMIT {mark}",
            (lease.lease_id, ITEMS_SHOWN),
        )
        listings.append(
            LeaseListing(
                lease=lease, lock_names=tuple(n[0] for n in names), resource_keys=tuple(k[0] for k in keys)
            )
        )
    return listings
