"""Column lists and row <-> model mapping shared by the SQL stores (same tables, same order)."""

from __future__ import annotations

import secrets
from typing import Any

from lockservice.model import ChangeEvent, EventType, Lease, LockState, LockWaiter, Resource

__all__ = [
    "EVENT_COLUMNS",
    "LEASE_COLUMNS",
    "LOCK_COLUMNS",
    "PAGE_TOKEN_SECRET_SQL",
    "RESOURCE_COLUMNS",
    "WAITER_COLUMNS",
    "lease_values",
    "lock_values",
    "metadata_columns",
    "new_page_token_secret",
    "prefix_upper_bound",
    "resource_values",
    "row_to_event",
    "row_to_lease",
    "row_to_lock",
    "row_to_resource",
    "row_to_waiter",
]

RESOURCE_COLUMNS = (
    "key, value, content_type, version, create_revision, mod_revision, create_time_us, "
    "update_time_us, lease_id"
)
LEASE_COLUMNS = "lease_id, holder, ttl_seconds, grant_time_us, expire_time_us, owner_lock"
LOCK_COLUMNS = (
    "name, held, holder, lease_id, token, acquire_time_us, lock_delay_us, available_time_us, grant_id"
)
WAITER_COLUMNS = (
    "waiter_id, name, seq, holder, lease_id, ttl_seconds, lock_delay_us, request_id, fingerprint, deadline_us"
)
EVENT_COLUMNS = f"type, revision, {RESOURCE_COLUMNS}"
# The store's own key for signing page tokens (`core.pagination`), made once by a migration.
PAGE_TOKEN_SECRET_SQL = "SELECT value FROM store_secrets WHERE name = 'page_token'"


def new_page_token_secret() -> bytes:
    return secrets.token_bytes(32)


def metadata_columns(empty_blob: str) -> str:
    """The resource columns with the value replaced by the dialect's empty blob literal."""
    return RESOURCE_COLUMNS.replace("value,", f"{empty_blob} AS value,", 1)


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string above every string that starts with a non-empty `prefix`.

    Keys are ASCII (the key syntax forbids the rest), so incrementing the last character works.
    """
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def row_to_resource(row: Any) -> Resource:
    return Resource(
        key=row[0],
        value=bytes(row[1]),
        content_type=row[2],
        version=row[3],
        create_revision=row[4],
        mod_revision=row[5],
        create_time_us=row[6],
        update_time_us=row[7],
        lease_id=row[8],
    )


def resource_values(resource: Resource) -> tuple[Any, ...]:
    return (
        resource.key,
        resource.value,
        resource.content_type,
        resource.version,
        resource.create_revision,
        resource.mod_revision,
        resource.create_time_us,
        resource.update_time_us,
        resource.lease_id,
    )


def row_to_lease(row: Any) -> Lease:
    return Lease(*row)


def lease_values(lease: Lease) -> tuple[Any, ...]:
    return (
        lease.lease_id,
        lease.holder,
        lease.ttl_seconds,
        lease.grant_time_us,
        lease.expire_time_us,
        lease.owner_lock,
    )


def row_to_lock(row: Any) -> LockState:
    return LockState(
        name=row[0],
        held=bool(row[1]),
        holder=row[2],
        lease_id=row[3],
        token=row[4],
        acquire_time_us=row[5],
        lock_delay_us=row[6],
        available_time_us=row[7],
        grant_id=row[8],
    )


def lock_values(state: LockState) -> tuple[Any, ...]:
    return (
        state.name,
        state.held,
        state.holder,
        state.lease_id,
        state.token,
        state.acquire_time_us,
        state.lock_delay_us,
        state.available_time_us,
        state.grant_id,
    )


def row_to_waiter(row: Any) -> LockWaiter:
    return LockWaiter(*row)


def row_to_event(row: Any) -> ChangeEvent:
    return ChangeEvent(type=EventType(row[0]), revision=row[1], resource=row_to_resource(row[2:]))
