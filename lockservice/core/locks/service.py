"""Locks: acquire (trying once or queueing first come, first served), release and read, the
entry points of LockService (the listing is `listing`).

How a request travels: `Locks.acquire` validates it and runs one idempotent write
(`lockservice.core.idempotency.write_once`) that reaps a holder whose lease is dead
(`expiry`), serves the queue (`handoff`), then takes the lock or joins the queue (`queue`),
whose wait ends in the grant's notice or in leaving the queue at the timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockservice.codec import decode_lock_view, encode_lock_view
from lockservice.core import requests as rq
from lockservice.core.idempotency import Answer, Once, Pending, write_once
from lockservice.core.leases.end import end_lease
from lockservice.core.leases.grant import check_lease_capacity, check_ttl, grant_in
from lockservice.core.leases.lifetime import is_live, require_live_lease
from lockservice.core.limits import Limits
from lockservice.core.locks.expiry import holder_lease, is_available
from lockservice.core.locks.handoff import give_back, hand_over, release_in, take
from lockservice.core.locks.listing import LockPage, list_locks
from lockservice.core.locks.queue import WAITER_GRACE_US, Queue, join_queue
from lockservice.core.locks.views import lock_conflict, lock_held, lock_view, lock_view_in, new_lock_state
from lockservice.core.ownership import check_lease_owner, mint_waiter_id, owner_tag, owns_lease
from lockservice.core.validation import check_holder, check_key, check_lease_id, check_request_id
from lockservice.errors import InvalidArgument, LockNotFound, LockNotHeld, PermissionDenied
from lockservice.model import LockState, LockView
from lockservice.store.base import Store, WriteTxn

if TYPE_CHECKING:
    from lockservice.core.visibility import Visibility

__all__ = ["Locks"]

_LOCK_VIEW = Answer(encode_lock_view, decode_lock_view)


@dataclass(frozen=True, slots=True)
class _Queued(Pending):
    """The acquire body's answer when the caller joined the queue; `delayed` when the lock is
    free but in its lock-delay, whose end is a deadline for the expiry task."""

    delayed: bool


def _reap_dead_holder(txn: WriteTxn, state: LockState) -> LockState:
    """A holder whose lease passed its deadline has lost the lock even before the expiry task
    gets to it: end that lease now, so the answer never depends on the task's timing."""
    if not state.held:
        return state
    lease = holder_lease(txn, state)
    if is_live(lease, txn.now_us):
        return state
    if lease is not None:
        end_lease(txn, lease, expired=True)
    else:
        release_in(txn, state, expired=True)
    return txn.get_lock(state.name) or state


def _serve_queue(txn: WriteTxn, state: LockState) -> LockState:
    """Hands a free lock past its lock-delay to the queue: queued callers come first."""
    if is_available(state, txn.now_us):
        return hand_over(txn, state)
    return state


class Locks:
    """The rules of locks over a `Store`. `on_new_deadline` is called when an acquire leaves a
    deadline the expiry task may not know: a lease made for it, or a lock-delay to wait out."""

    def __init__(
        self, store: Store, limits: Limits, on_new_deadline: Callable[[], None] = lambda: None
    ) -> None:
        self._store = store
        self._limits = limits
        self._on_new_deadline = on_new_deadline
        self._queue = Queue(store)

    def close(self) -> None:
        """Ends every wait with SHUTTING_DOWN; the queue rows go with the process."""
        self._queue.close()

    # -- checks -----------------------------------------------------------------------------

    def _check_acquire(self, req: rq.AcquireLock) -> int:
        """Validates the request; returns its lock-delay in microseconds."""
        limits = self._limits
        check_key(req.name, limits, field="name")
        check_holder(req.holder)
        check_request_id(req.request_id, limits)
        if req.lease_id and req.ttl_seconds:
            raise InvalidArgument("set lease_id or ttl_seconds, not both", metadata={"field": "lease"})
        if req.lease_id:
            check_lease_id(req.lease_id)
            check_lease_owner(req.lease_id, req.owner)
        else:
            check_ttl(req.ttl_seconds, limits)
        if not 0 <= req.wait_timeout_seconds <= limits.max_lock_wait_seconds:
            raise InvalidArgument(
                f"wait_timeout must be between 0 and {limits.max_lock_wait_seconds:g} seconds",
                metadata={"field": "wait_timeout", "max": f"{limits.max_lock_wait_seconds:g}"},
            )
        delay = (
            limits.default_lock_delay_seconds if req.lock_delay_seconds is None else req.lock_delay_seconds
        )
        if not 0 <= delay <= limits.max_lock_delay_seconds:
            raise InvalidArgument(
                f"lock_delay must be between 0 and {limits.max_lock_delay_seconds:g} seconds",
                metadata={"field": "lock_delay", "max": f"{limits.max_lock_delay_seconds:g}"},
            )
        return round(delay * 1_000_000)

    # -- acquire ----------------------------------------------------------------------------

    async def acquire(self, req: rq.AcquireLock) -> LockView:
        """Takes the lock, or queues for it when `wait_timeout_seconds` is set.

        A request_id names one acquisition wherever and however often it is sent: a retry gets
        the stored answer once there is one, and a retry of a request still queued (its first
        attempt's server died, or the caller gave up on it) takes over the queued waiter, its
        place and its coming grant, instead of queueing twice. The attempt taken over is left
        with nothing to wait for: at its own timeout it answers the request's answer, if any."""
        lock_delay_us = self._check_acquire(req)
        once = Once.of("AcquireLock", req)
        # Carries the caller's owner tag: a lease made for it at the hand-over is its own.
        waiter_id = mint_waiter_id(req.owner)
        wait = req.wait_timeout_seconds > 0
        wait_us = round(req.wait_timeout_seconds * 1_000_000) + WAITER_GRACE_US

        def take_over(txn: WriteTxn) -> _Queued | None:
            """A retry of a request still queued takes over its waiter (see above)."""
            # The lock's row before its queue's: the order in which every lock write locks them
            # (PostgreSQL row locks), so two writes never wait for each other.
            state = txn.get_lock(req.name)
            queued = txn.queued_request(once.key)
            if queued is None:
                return None
            once.check_same(queued.fingerprint)
            txn.take_over_waiter(queued.waiter_id, waiter_id, txn.now_us + wait_us)
            served = _serve_queue(txn, _reap_dead_holder(txn, state or new_lock_state(req.name)))
            return _Queued(delayed=not served.held)

        def run(txn: WriteTxn) -> LockView | _Queued:
            return self._try_acquire(txn, req, once, waiter_id, wait, lock_delay_us, wait_us)

        future: asyncio.Future[LockView] = (
            # Registered before the write: a hand-over can commit before the write's answer.
            self._queue.expect(waiter_id, req.name) if wait else asyncio.get_running_loop().create_future()
        )
        try:
            write = write_once(self._store, once, run, _LOCK_VIEW, resume=take_over)
            outcome = await self._queue.run_joining_write(write, req.name, waiter_id)
            # A lease made here (or at the hand-over) or a lock-delay to wait out is a deadline
            # the expiry task may not know; a lock taken with a lease the caller holds is not.
            if not req.lease_id or (isinstance(outcome, _Queued) and outcome.delayed):
                self._on_new_deadline()
            if isinstance(outcome, LockView):
                return outcome
            return await self._queue.wait(req.name, req.wait_timeout_seconds, once, waiter_id, future)
        finally:
            self._queue.forget(waiter_id)

    def _try_acquire(
        self,
        txn: WriteTxn,
        req: rq.AcquireLock,
        once: Once,
        waiter_id: str,
        wait: bool,
        lock_delay_us: int,
        wait_us: int,
    ) -> LockView | _Queued:
        state = txn.get_lock(req.name)
        if state is not None:
            state = _reap_dead_holder(txn, state)
            if state.held and req.lease_id and state.lease_id == req.lease_id:
                return lock_view_in(txn, state)  # already ours: acquiring again is a no-op
            state = _serve_queue(txn, state)
        queued = txn.count_waiters(req.name) if state is not None else 0
        if state is None or (is_available(state, txn.now_us) and not queued):
            if req.lease_id:
                lease = require_live_lease(txn, req.lease_id)
            else:
                check_lease_capacity(txn, self._limits)
                lease = grant_in(
                    txn, req.ttl_seconds, req.holder, owner_lock=req.name, owner_tag=owner_tag(req.owner)
                )
            held = take(txn, state or new_lock_state(req.name), lease, req.holder, lock_delay_us, waiter_id)
            return lock_view(held, lease, 0)
        if not wait:
            raise lock_held(txn, state, queued)
        join_queue(txn, req, once, waiter_id, lock_delay_us, wait_us, queued, self._limits)
        return _Queued(delayed=not state.held)

    # -- release and read -------------------------------------------------------------------

    async def release(self, req: rq.ReleaseLock) -> LockView:
        check_key(req.name, self._limits, field="name")
        check_request_id(req.request_id, self._limits)
        if req.token < 1:
            raise InvalidArgument("token must be 1 or more", metadata={"field": "token"})

        def run(txn: WriteTxn) -> LockView:
            state = txn.get_lock(req.name)
            if state is None:
                raise LockNotFound(f"lock {req.name} was never acquired", metadata={"name": req.name})
            if not state.held or state.token != req.token:
                raise LockNotHeld(
                    f"token {req.token} does not hold lock {req.name}"
                    + (f"; token {state.token} does" if state.held else "; nobody holds it"),
                    metadata={"name": req.name, "token": str(state.token)},
                    conflict=lock_conflict(txn, state, f"token {req.token}"),
                )
            if not is_live(holder_lease(txn, state), txn.now_us):
                raise LockNotHeld(
                    f"token {req.token} lost lock {req.name}: its lease expired",
                    metadata={"name": req.name, "token": str(state.token)},
                    conflict=lock_conflict(txn, state, f"token {req.token}"),
                )
            if not owns_lease(state.lease_id, req.owner):
                raise PermissionDenied(
                    f"lock {req.name} is held by another identity; only the holder may release it",
                    metadata={"name": req.name, "token": str(state.token)},
                )
            give_back(txn, state)
            return lock_view_in(txn, txn.get_lock(req.name) or state)

        # A retry of a release that succeeded gets its first answer, not LOCK_NOT_HELD.
        return await write_once(self._store, Once.of("ReleaseLock", req), run, _LOCK_VIEW)

    async def list(self, req: rq.ListLocks, visibility: Visibility) -> LockPage:
        """A page of ListLocks (`listing`)."""
        return await list_locks(self._store, self._limits, req, visibility)

    async def get(self, name: str) -> LockView:
        check_key(name, self._limits, field="name")
        state = await self._store.get_lock(name)
        if state is None:
            raise LockNotFound(f"lock {name} was never acquired", metadata={"name": name})
        lease = await self._store.get_lease(state.lease_id) if state.held else None
        return lock_view(state, lease, await self._store.waiter_count(name))
