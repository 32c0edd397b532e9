"""ListLeases: the live leases a caller owns, a page at a time.

A lease belongs to the identity it was granted to, and its id starts with that identity's owner
tag (`lockservice.core.ownership`): a caller's leases are the ids under its tag, read as one
range, so a caller never scans others' leases. Without authentication every lease is listed.
A page is bounded by count (`page_size`) and, since each lease carries at most
`ITEMS_SHOWN` lock names and resource keys, by bytes too: under the largest reply the server
sends (`Limits.message_bytes`).

The page token carries the last lease id read, signed and bound to the caller's owner tag and
the `holder` filter (`lockservice.core.pagination`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.ownership import owner_tag
from lockservice.core.pagination import decode_page_token, encode_page_token, page_size, rows_within_bytes
from lockservice.core.validation import check_holder
from lockservice.model import LeaseListing, LeaseView
from lockservice.store.base import Store

__all__ = ["LeasePage", "list_leases"]


# What a listed lease costs on the wire besides its names and keys (a generous bound).
_LEASE_OVERHEAD_BYTES = 192
_NAME_OVERHEAD_BYTES = 4


def _listing_bytes(listing: LeaseListing) -> int:
    names = listing.lock_names + listing.resource_keys
    size = _LEASE_OVERHEAD_BYTES + len(listing.lease.lease_id) + len(listing.lease.holder.encode())
    return size + sum(_NAME_OVERHEAD_BYTES + len(name) for name in names)


@dataclass(frozen=True, slots=True)
class LeasePage:
    leases: tuple[LeaseView, ...]
    next_page_token: str


async def list_leases(store: Store, limits: Limits, req: rq.ListLeases) -> LeasePage:
    """One page of the live leases `req.owner` owns, of `req.holder` when set.
    INVALID_PAGE_TOKEN for a token not issued for this query (another caller's included)."""
    check_holder(req.holder)
    size = page_size(req.page_size, limits)
    tag = owner_tag(req.owner)
    query = f"ListLeases\x00{tag}\x00{req.holder}"
    cursor = decode_page_token(store.page_token_secret, req.page_token, query, str)
    start_after = cursor if isinstance(cursor, str) else ""
    now = store.now_us()
    rows = await store.list_leases(tag, req.holder, start_after, size + 1, now)
    page = rows[: rows_within_bytes(rows[:size], _listing_bytes, limits.message_bytes)]
    more = len(rows) > len(page)
    rows = page
    token = encode_page_token(store.page_token_secret, query, rows[-1].lease.lease_id) if more else ""
    views = tuple(
        LeaseView(
            lease=row.lease,
            remaining_ms=max(0, row.lease.expire_time_us - now) // 1000,
            lock_names=row.lock_names,
            resource_keys=row.resource_keys,
        )
        for row in rows
    )
    return LeasePage(leases=views, next_page_token=token)
