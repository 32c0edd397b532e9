"""Fencing: a write that carries a lock's token is applied only while that token holds the lock.

This is the storage-side protection against a paused holder: once its lease has passed its
deadline, its token is refused even before anyone else takes the lock.
"""

from __future__ import annotations

from lockservice.core.handoff import new_lock_state
from lockservice.core.limits import Limits
from lockservice.core.locks import lock_conflict
from lockservice.core.validation import check_key
from lockservice.errors import InvalidArgument, StaleFence
from lockservice.model import Fence
from lockservice.store.base import WriteTxn

__all__ = ["check_fence", "check_fence_shape"]


def check_fence_shape(fence: Fence | None, limits: Limits) -> None:
    if fence is None:
        return
    check_key(fence.lock_name, limits, field="fence.lock_name")
    if fence.token < 1:
        raise InvalidArgument("fence.token must be 1 or more", metadata={"field": "fence.token"})


def check_fence(txn: WriteTxn, fence: Fence | None) -> None:
    if fence is None:
        return
    state = txn.get_lock(fence.lock_name)
    if state is None:
        raise StaleFence(
            f"fence token {fence.token} is stale: lock {fence.lock_name} was never acquired",
            metadata={"lock_name": fence.lock_name, "token": str(fence.token)},
            conflict=lock_conflict(txn, new_lock_state(fence.lock_name), f"token {fence.token}"),
        )
    lease = txn.get_lease(state.lease_id) if state.held else None
    alive = lease is not None and lease.expire_time_us > txn.now_us
    if state.held and state.token == fence.token and alive:
        return
    if state.held and state.token == fence.token:
        why = "its lease expired"
    elif state.held:
        why = f"lock {fence.lock_name} is now held with token {state.token}"
    else:
        why = f"nobody holds lock {fence.lock_name}"
    raise StaleFence(
        f"fence token {fence.token} is stale: {why}",
        metadata={"lock_name": fence.lock_name, "token": str(fence.token), "current_token": str(state.token)},
        conflict=lock_conflict(txn, state, f"token {fence.token}"),
    )
