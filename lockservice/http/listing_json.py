"""ListLocks and ListLeases answers as JSON: a page of locks (with their queues and whether the
holder was withheld) or of leases, and the next page's token."""

from __future__ import annotations

from lockservice.json_views import JsonObject, lease_json, listed_lock_json
from lockservice.v1 import lease_pb2, lock_pb2

__all__ = ["lease_list_json", "lock_list_json"]


def lock_list_json(page: lock_pb2.ListLocksResponse) -> JsonObject:
    return {
        "locks": [listed_lock_json(lock) for lock in page.locks],
        "next_page_token": page.next_page_token,
    }


def lease_list_json(page: lease_pb2.ListLeasesResponse) -> JsonObject:
    return {"leases": [lease_json(lease) for lease in page.leases], "next_page_token": page.next_page_token}
