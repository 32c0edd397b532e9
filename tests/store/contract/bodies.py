"""Write bodies the contract tests share: they speak only `WriteTxn`, as the core's do."""

from __future__ import annotations

from collections.abc import Callable

from lockservice.model import Lease, LockState, LockWaiter, Resource
from lockservice.store.base import WriteTxn

FAR_FUTURE_US = 10**18


def put(key: str, value: bytes = b"v", *, lease_id: str = "") -> Callable[[WriteTxn], Resource]:
    """Writes the next version of `key` (version 1 when absent) at a new revision."""

    def body(txn: WriteTxn) -> Resource:
        return put_in(txn, key, value, lease_id=lease_id)

    return body


def put_in(txn: WriteTxn, key: str, value: bytes, *, lease_id: str = "") -> Resource:
    current = txn.get(key)
    revision = txn.next_revision()
    resource = Resource(
        key=key,
        value=value,
        content_type="text/plain",
        version=1 if current is None else current.version + 1,
        create_revision=revision if current is None else current.create_revision,
        mod_revision=revision,
        create_time_us=txn.now_us if current is None else current.create_time_us,
        update_time_us=txn.now_us,
        lease_id=lease_id,
    )
    txn.put(resource)
    return resource


def delete(key: str, *, expired: bool = False) -> Callable[[WriteTxn], int]:
    """Deletes `key` at a new revision; returns the revision."""

    def body(txn: WriteTxn) -> int:
        revision = txn.next_revision()
        txn.delete(key, expired=expired)
        return revision

    return body


def lease(lease_id: str, expire_time_us: int = FAR_FUTURE_US, *, owner_lock: str = "") -> Lease:
    return Lease(
        lease_id=lease_id,
        holder=f"holder-{lease_id}",
        ttl_seconds=10,
        grant_time_us=1,
        expire_time_us=expire_time_us,
        owner_lock=owner_lock,
    )


def lock(name: str, *, lease_id: str = "", token: int = 1, available_time_us: int = 0) -> LockState:
    """Held under `lease_id` when one is given, else free."""
    return LockState(
        name=name,
        held=bool(lease_id),
        holder=f"holder-{lease_id}" if lease_id else "",
        lease_id=lease_id,
        token=token,
        acquire_time_us=1 if lease_id else 0,
        lock_delay_us=0,
        available_time_us=available_time_us,
        grant_id=f"grant-{lease_id}" if lease_id else "",
    )


def waiter(waiter_id: str, name: str, *, lease_id: str = "", request_id: str = "") -> LockWaiter:
    return LockWaiter(
        waiter_id=waiter_id,
        name=name,
        seq=0,
        holder=f"holder-{waiter_id}",
        lease_id=lease_id,
        ttl_seconds=0 if lease_id else 10,
        lock_delay_us=0,
        request_id=request_id,
        fingerprint=f"print-{request_id}" if request_id else "",
        deadline_us=FAR_FUTURE_US,
    )
