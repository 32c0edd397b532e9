"""Fencing: a write that carries a lock's token is applied only while that token holds the lock.

This is the storage-side protection against a paused holder: once its lease has passed its
deadline (`expiry`), its token is refused even before anyone else takes the lock. Resource
writes (and CompareAndSet) call this; it reads the lock's state and nothing of the queue.
"""

from __future__ import annotations

from lockservice.core.leases.lifetime import is_live
from lockservice.core.limits import Limits
from lockservice.core.locks.expiry import holder_lease
from lockservice.core.locks.views import lock_conflict, new_lock_state
from lockservice.core.validation import check_key
from lockservice.errors import InvalidArgument, StaleFence
from lockservice.model import Fence
from lockservice.store.base import WriteTxn

__all__ = ["check_fence", "check_fence_shape"]


def check_fence_shape(fence: Fence | None, limits: Limits) -> None:
    """INVALID_ARGUMENT for a fence that cannot name a lock and token (checked before any write)."""
    if fence is None:
        return
    check_key(fence.lock_name, limits, field="fence.lock_name")
    if fence.token < 1:
        raise InvalidArgument("fence.token must be 1 or more", metadata={"field": "fence.token"})


def check_fence(txn: WriteTxn, fence: Fence | None) -> None:
    """STALE_FENCE unless `fence.token` holds `fence.lock_name` now, under a live lease."""
    if fence is None:
        return
    state = txn.get_lock(fence.lock_name)
    if state is None:
        raise StaleFence(
            f"fence token {fence.token} is stale: lock {fence.lock_name} was never acquired",
            metadata={"lock_name": fence.lock_name, "token": str(fence.token)},
            conflict=lock_conflict(txn, new_lock_state(fence.lock_name), f"token {fence.token}"),
        )
    if state.held and state.token == fence.token and is_live(holder_lease(txn, state), txn.now_us):
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
