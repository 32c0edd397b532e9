"""Taking, releasing and handing over a lock inside a write body.

A release hands the lock straight to the first live waiter in the same transaction, so the
queue is served first come, first served and the next holder is known the moment the release
commits; the waiter's call is woken by the notice the commit publishes (`queue`).

`free_locks_of` is the lock side of a lease's end (`lockservice.core.leases.end`).
"""

from __future__ import annotations

from dataclasses import replace

from lockservice.codec import decode_lock_view, encode_lock_view
from lockservice.core.leases.grant import grant_in
from lockservice.core.leases.lifetime import live_lease
from lockservice.core.locks.expiry import available_time_after_release
from lockservice.core.locks.views import lock_view
from lockservice.core.ownership import waiter_owner_tag
from lockservice.model import Lease, LockGranted, LockState, LockWaiter, WaiterFailed
from lockservice.store.base import WriteTxn

__all__ = ["free_locks_of", "give_back", "hand_over", "release_in", "take"]


def take(
    txn: WriteTxn, state: LockState, lease: Lease, holder: str, lock_delay_us: int, grant_id: str
) -> LockState:
    """Gives the lock to `lease` with the next fencing token: above the lock's last one and
    above the store's floor, so tokens never repeat per name, even across a restore (which
    raises the floor past every token issued before it, for names the backup never saw too)."""
    held = LockState(
        name=state.name,
        held=True,
        holder=holder,
        lease_id=lease.lease_id,
        token=max(state.token, txn.token_floor) + 1,
        acquire_time_us=txn.now_us,
        lock_delay_us=lock_delay_us,
        available_time_us=0,
        grant_id=grant_id,
    )
    txn.put_lock(held)
    return held


def release_in(txn: WriteTxn, state: LockState, *, expired: bool) -> LockState:
    """Frees a held lock: to the first waiter at once, or after its lock-delay when `expired`
    (`expiry.available_time_after_release`)."""
    available = available_time_after_release(state, txn.now_us, expired=expired)
    freed = replace(state, held=False, holder="", lease_id="", grant_id="", available_time_us=available)
    txn.put_lock(freed)
    if available:
        return freed
    return hand_over(txn, freed)


def _lease_ended(waiter: LockWaiter) -> WaiterFailed:
    """The notice that fails a waiter whose lease ended before the lock reached it."""
    return WaiterFailed(
        waiter_id=waiter.waiter_id,
        name=waiter.name,
        reason="LEASE_NOT_FOUND",
        message=f"lease {waiter.lease_id} ended while waiting for lock {waiter.name}",
    )


def _answered_already(txn: WriteTxn, waiter: LockWaiter) -> bool:
    """Whether the waiter's request already has its answer, so it must not be granted again.

    Never true while every replica runs this version: a retry takes over its request's queued
    waiter rather than queueing a second one. A second waiter can remain from a replica of an
    older version, though, and one request never gets two grants: the waiting attempt is
    answered with the first answer (or, for another payload, REQUEST_ID_REUSED at its timeout).
    """
    prior = txn.get_answer(waiter.request_id)
    if prior is None:
        return False
    if prior.fingerprint == waiter.fingerprint:
        txn.notify(LockGranted(waiter_id=waiter.waiter_id, lock=decode_lock_view(prior.answer)))
    return True


def hand_over(txn: WriteTxn, state: LockState) -> LockState:
    """Gives a free, available lock to the first queued waiter whose lease is alive."""
    # One waiter at a time: the first is nearly always alive, and a queue can be long.
    while waiters := txn.lock_waiters(state.name, limit=1):
        waiter = waiters[0]
        txn.remove_waiter(waiter.waiter_id)
        if waiter.deadline_us and waiter.deadline_us <= txn.now_us:
            continue  # its caller stopped waiting (or its server died): the queue moves on
        if waiter.request_id and _answered_already(txn, waiter):
            continue
        if waiter.lease_id:
            lease = live_lease(txn, waiter.lease_id)
            if lease is None:
                txn.notify(_lease_ended(waiter))
                continue
        else:
            lease = grant_in(
                txn,
                waiter.ttl_seconds,
                waiter.holder,
                owner_lock=state.name,
                owner_tag=waiter_owner_tag(waiter.waiter_id),
            )
        held = take(txn, state, lease, waiter.holder, waiter.lock_delay_us, waiter.waiter_id)
        view = lock_view(held, lease, txn.count_waiters(state.name))
        if waiter.request_id:
            txn.save_answer(waiter.request_id, waiter.fingerprint, encode_lock_view(view))
        txn.notify(LockGranted(waiter_id=waiter.waiter_id, lock=view))
        return held
    return state


def give_back(txn: WriteTxn, state: LockState) -> None:
    """Its holder releases the lock (or a waiter gone before its grant arrived gives it back).
    A lease granted just for this lock ends with it, unless something else hangs on it."""
    lease = txn.get_lease(state.lease_id)
    release_in(txn, state, expired=False)
    if (
        lease is not None
        and lease.owner_lock == state.name
        and not txn.lease_lock_names(lease.lease_id)
        and not txn.lease_resource_keys(lease.lease_id)
    ):
        txn.delete_lease(lease.lease_id)


def free_locks_of(txn: WriteTxn, lease_id: str, *, expired: bool) -> list[str]:
    """The lock side of a lease's end: releases the locks it holds (to their next waiters, or
    into their lock-delay when `expired`) and fails the waiters queued under it. Returns the
    names of the locks it held."""
    released = txn.lease_lock_names(lease_id)
    for name in released:
        state = txn.get_lock(name)
        if state is not None and state.held and state.lease_id == lease_id:
            release_in(txn, state, expired=expired)
    for waiter in txn.waiters_under_lease(lease_id):
        txn.remove_waiter(waiter.waiter_id)
        txn.notify(_lease_ended(waiter))
    return released
