"""ListLocks: the locks under a prefix, a page at a time, as the caller may see them.

A page is read as `page_size + 1` rows from the store, so whether more follow is known without
another read; rows the caller may not read are dropped from the page (`Visibility.listed`) but
still move the cursor, so a page may hold fewer locks than asked (even none) and a caller with
narrow rights never scans more than one page's rows per call. A page is also cut by bytes:
what its locks and queues weigh on the wire stays under the largest reply the server sends
(`Limits.message_bytes`, the memory budget's reply size).

The page token carries the last name read, signed and bound to the prefix and `include_queue`
(`lockservice.core.pagination`): a lock acquired between two pages appears in the later page if
its name sorts after the cursor, and no lock is listed twice or skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.pagination import decode_page_token, encode_page_token, page_size, rows_within_bytes
from lockservice.core.validation import check_prefix
from lockservice.model import LockListing
from lockservice.store.base import Store

if TYPE_CHECKING:
    from lockservice.core.visibility import Visibility

__all__ = ["LockPage", "list_locks"]

# What a listed lock or queued caller costs on the wire besides its strings: field tags,
# lengths, numbers and timestamps (a generous bound).
_LOCK_OVERHEAD_BYTES = 128
_WAITER_OVERHEAD_BYTES = 32


@dataclass(frozen=True, slots=True)
class LockPage:
    locks: tuple[LockListing, ...]
    next_page_token: str


def _listing_bytes(listing: LockListing) -> int:
    """An upper bound of what `listing` weighs in a reply."""
    state = listing.view.state
    size = _LOCK_OVERHEAD_BYTES + len(state.name) + len(state.holder.encode()) + len(state.lease_id)
    return size + sum(_WAITER_OVERHEAD_BYTES + len(w.holder.encode()) for w in listing.queue)


async def list_locks(store: Store, limits: Limits, req: rq.ListLocks, visibility: Visibility) -> LockPage:
    """One page of the locks named `req.prefix...` that `visibility` lets the caller see.
    INVALID_KEY for a bad prefix, INVALID_PAGE_TOKEN for a token not issued for this query."""
    check_prefix(req.prefix, limits)
    size = page_size(req.page_size, limits)
    query = f"ListLocks\x00{req.prefix}\x00{int(req.include_queue)}"
    cursor = decode_page_token(store.page_token_secret, req.page_token, query, str)
    start_after = cursor if isinstance(cursor, str) else ""
    rows = await store.list_locks(req.prefix, start_after, size + 1, include_queue=req.include_queue)
    page = rows[: rows_within_bytes(rows[:size], _listing_bytes, limits.message_bytes)]
    more = len(rows) > len(page)
    shown = tuple(v for v in map(visibility.listed, page) if v is not None)
    last = page[-1].view.state.name if page else ""
    token = encode_page_token(store.page_token_secret, query, last) if more else ""
    return LockPage(locks=shown, next_page_token=token)
