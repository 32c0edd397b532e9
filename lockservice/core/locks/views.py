"""What a lock looks like from outside: its view (holder's deadline, queue length), the state of
a lock never acquired, and the conflict state and LOCK_HELD error that carry it.

The conflict builder serves the fencing of resource writes as well as the locks' own errors.
"""

from __future__ import annotations

from lockservice.core.locks.expiry import holder_lease
from lockservice.errors import LockHeld
from lockservice.model import ConflictState, Lease, LockState, LockView
from lockservice.store.base import WriteTxn

__all__ = ["lock_conflict", "lock_held", "lock_view", "lock_view_in", "new_lock_state"]


def new_lock_state(name: str) -> LockState:
    """A lock never acquired: free, available, token 0."""
    return LockState(
        name=name,
        held=False,
        holder="",
        lease_id="",
        token=0,
        acquire_time_us=0,
        lock_delay_us=0,
        available_time_us=0,
    )


def _holder_deadline_us(state: LockState, lease: Lease | None) -> int:
    """The held lock's lease deadline; 0 for a free lock or a lease already gone."""
    return lease.expire_time_us if state.held and lease is not None else 0


def lock_view(state: LockState, lease: Lease | None, waiters: int) -> LockView:
    """The lock as GetLock and AcquireLock answer it, given its holder's lease (if any)."""
    return LockView(state=state, expire_time_us=_holder_deadline_us(state, lease), waiters=waiters)


def lock_view_in(txn: WriteTxn, state: LockState) -> LockView:
    """`lock_view` read inside a write body."""
    return lock_view(state, holder_lease(txn, state), txn.count_waiters(state.name))


def lock_conflict(txn: WriteTxn, state: LockState, expected: str) -> ConflictState:
    """The current state of a lock, for LOCK_HELD / LOCK_NOT_HELD / STALE_FENCE details: its
    expiry is the holder's lease deadline, or for a free lock the end of its lock-delay."""
    expire = _holder_deadline_us(state, holder_lease(txn, state)) if state.held else state.available_time_us
    return ConflictState(
        key=state.name,
        current=None,
        expected=expected,
        revision=txn.current_revision(),
        holder=state.holder,
        token=state.token,
        expire_time_us=expire,
        lease_id=state.lease_id,
    )


def lock_held(txn: WriteTxn, state: LockState, waiters: int) -> LockHeld:
    """LOCK_HELD for an acquire that cannot take the lock now: held, or in its lock-delay."""
    if state.held:
        message = f"lock {state.name} is held by {state.holder or 'another holder'} (token {state.token})"
    else:
        message = f"lock {state.name} is in its lock-delay after its holder's lease expired"
    if waiters:
        message += f"; {waiters} waiter(s) queued"
    return LockHeld(
        message,
        metadata={"name": state.name, "token": str(state.token), "waiters": str(waiters)},
        conflict=lock_conflict(txn, state, "free"),
    )
