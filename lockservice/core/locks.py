"""Locks: acquire (trying once or queueing first come, first served), release, read.

A queued caller is a row in the store's waiter queue plus a future here. A release (or an
expiry) hands the lock to the first waiter inside its own transaction, and the commit's
`LockGranted` notice resolves that waiter's future: no polling, no thundering herd.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from lockservice.codec import decode_lock_view, encode_lock_view
from lockservice.core import requests as rq
from lockservice.core.handoff import hand_over, lock_view_in, new_lock_state, release_in, take
from lockservice.core.idempotency import check_same_request, fingerprint, first_answer, request_key, run_once
from lockservice.core.leases import end_lease
from lockservice.core.leasing import check_lease_capacity, check_ttl, grant_in, require_live_lease
from lockservice.core.limits import Limits
from lockservice.core.ownership import check_lease_owner, mint_waiter_id, owner_tag, owns_lease
from lockservice.core.validation import check_holder, check_key, check_lease_id, check_request_id
from lockservice.errors import (
    InvalidArgument,
    LeaseNotFound,
    LimitExceeded,
    LockHeld,
    LockNotFound,
    LockNotHeld,
    LockserviceError,
    PermissionDenied,
    RequestIdReused,
    ShuttingDown,
)
from lockservice.model import ConflictState, LockGranted, LockState, LockView, LockWaiter, WaiterFailed
from lockservice.store.base import Notice, Store, WriteTxn

__all__ = ["Locks", "lock_conflict"]


# A waiter's row outlives its wait by this much, so a caller whose timer fires while the lock
# is on its way still finds its grant (and keeps it) rather than losing it to the deadline.
_WAITER_GRACE_US = 1_000_000


@dataclass(frozen=True, slots=True)
class _Queued:
    """The acquire body's answer when the caller joined the queue; `delayed` when the lock is
    free but in its lock-delay, whose end is a deadline for the expiry task."""

    delayed: bool


def lock_conflict(txn: WriteTxn, state: LockState, expected: str) -> ConflictState:
    """The current state of a lock, for LOCK_HELD / LOCK_NOT_HELD / STALE_FENCE details."""
    expire = state.available_time_us
    if state.held:
        lease = txn.get_lease(state.lease_id)
        expire = lease.expire_time_us if lease is not None else 0
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


def _lock_held(txn: WriteTxn, state: LockState, waiters: int) -> LockHeld:
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


def _reap_dead_holder(txn: WriteTxn, state: LockState) -> LockState:
    """A holder whose lease passed its deadline has lost the lock even before the expiry task
    gets to it: end that lease now, so the answer never depends on the task's timing."""
    if not state.held:
        return state
    lease = txn.get_lease(state.lease_id)
    if lease is not None and lease.expire_time_us > txn.now_us:
        return state
    if lease is not None:
        end_lease(txn, lease, expired=True)
    else:
        release_in(txn, state, expired=True)
    return txn.get_lock(state.name) or state


def _serve_queue(txn: WriteTxn, state: LockState) -> LockState:
    """Hands a free lock past its lock-delay to the queue: queued callers come first."""
    if not state.held and state.available_time_us <= txn.now_us:
        return hand_over(txn, state)
    return state


class Locks:
    def __init__(
        self, store: Store, limits: Limits, on_new_deadline: Callable[[], None] = lambda: None
    ) -> None:
        self._store = store
        self._limits = limits
        self._on_new_deadline = on_new_deadline
        self._waiting: dict[str, asyncio.Future[LockView]] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        store.subscribe(self._on_notices)

    def close(self) -> None:
        """Ends every wait with SHUTTING_DOWN; the queue rows go with the process."""
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ShuttingDown("the server is shutting down; retry on another replica"))

    def _on_notices(self, notices: list[Notice]) -> None:
        for notice in notices:
            if isinstance(notice, LockGranted):
                future = self._waiting.get(notice.waiter_id)
                if future is not None and not future.done():
                    future.set_result(notice.lock)
            elif isinstance(notice, WaiterFailed):
                future = self._waiting.get(notice.waiter_id)
                if future is not None and not future.done():
                    future.set_exception(LeaseNotFound(notice.message, metadata={"name": notice.name}))

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
        request_print = fingerprint("AcquireLock", req)
        key = request_key(req.request_id, req.owner)
        # Carries the caller's owner tag: a lease made for it at the hand-over is its own.
        waiter_id = mint_waiter_id(req.owner)
        wait = req.wait_timeout_seconds > 0
        wait_us = round(req.wait_timeout_seconds * 1_000_000) + _WAITER_GRACE_US

        def body(txn: WriteTxn) -> LockView | _Queued:
            if key:
                txn.claim_request(key)
            state = txn.get_lock(req.name)
            if key:
                queued = txn.queued_request(key)
                if queued is not None:
                    check_same_request(queued.fingerprint, request_print, req.request_id)
                    txn.take_over_waiter(queued.waiter_id, waiter_id, txn.now_us + wait_us)
                    served = _serve_queue(txn, _reap_dead_holder(txn, state or new_lock_state(req.name)))
                    return _Queued(delayed=not served.held)
                prior = txn.get_answer(key)
                if prior is not None:
                    return decode_lock_view(first_answer(prior, request_print, req.request_id))
            outcome = self._try_acquire(
                txn, req, state, waiter_id, wait, lock_delay_us, request_print, wait_us
            )
            if isinstance(outcome, LockView) and key:
                txn.save_answer(key, request_print, encode_lock_view(outcome))
            return outcome

        future: asyncio.Future[LockView] = asyncio.get_running_loop().create_future()
        if wait:
            # Registered before the body runs: a hand-over can commit before the body's answer.
            self._waiting[waiter_id] = future
        try:
            outcome = await self._store.write(body)
            # A lease made here (or at the hand-over) or a lock-delay to wait out is a deadline
            # the expiry task may not know; a lock taken with a lease the caller holds is not.
            if not req.lease_id or (isinstance(outcome, _Queued) and outcome.delayed):
                self._on_new_deadline()
            if isinstance(outcome, LockView):
                return outcome
            return await self._wait(req, request_print, waiter_id, future)
        finally:
            self._waiting.pop(waiter_id, None)

    def _try_acquire(
        self,
        txn: WriteTxn,
        req: rq.AcquireLock,
        state: LockState | None,
        waiter_id: str,
        wait: bool,
        lock_delay_us: int,
        request_print: str,
        wait_us: int,
    ) -> LockView | _Queued:
        if state is not None:
            state = _reap_dead_holder(txn, state)
            if state.held and req.lease_id and state.lease_id == req.lease_id:
                return lock_view_in(txn, state)  # already ours: acquiring again is a no-op
            state = _serve_queue(txn, state)
        queued = txn.count_waiters(req.name) if state is not None else 0
        if state is None or (not state.held and state.available_time_us <= txn.now_us and not queued):
            if req.lease_id:
                lease = require_live_lease(txn, req.lease_id)
            else:
                check_lease_capacity(txn, self._limits)
                lease = grant_in(
                    txn, req.ttl_seconds, req.holder, owner_lock=req.name, owner_tag=owner_tag(req.owner)
                )
            held = take(txn, state or new_lock_state(req.name), lease, req.holder, lock_delay_us, waiter_id)
            return LockView(state=held, expire_time_us=lease.expire_time_us, waiters=0)
        if not wait:
            raise _lock_held(txn, state, queued)
        if req.lease_id:
            require_live_lease(txn, req.lease_id)
        else:
            check_lease_capacity(txn, self._limits)  # the hand-over will make its lease
        if queued >= self._limits.max_waiters_per_lock:
            raise LimitExceeded(
                f"lock {req.name} already has {queued} waiters, the limit",
                metadata={"name": req.name, "limit": str(self._limits.max_waiters_per_lock)},
            )
        txn.add_waiter(
            LockWaiter(
                waiter_id=waiter_id,
                name=req.name,
                seq=0,
                holder=req.holder,
                lease_id=req.lease_id,
                ttl_seconds=req.ttl_seconds,
                lock_delay_us=lock_delay_us,
                request_id=request_key(req.request_id, req.owner),
                fingerprint=request_print,
                deadline_us=txn.now_us + wait_us,
            )
        )
        return _Queued(delayed=not state.held)

    async def _wait(
        self, req: rq.AcquireLock, request_print: str, waiter_id: str, future: asyncio.Future[LockView]
    ) -> LockView:
        try:
            return await asyncio.wait_for(asyncio.shield(future), req.wait_timeout_seconds)
        except TimeoutError:
            # Leave the queue; if the lock reached us (or this request) meanwhile, it is ours.
            outcome = await self._store.write(
                lambda txn: self._leave_queue(txn, req.name, waiter_id, keeping=(req, request_print))
            )
            if isinstance(outcome, LockView):
                return outcome
            raise outcome from None
        except asyncio.CancelledError:
            # The caller is gone: leave the queue, and give back a lock granted meanwhile.
            task = asyncio.get_running_loop().create_task(self._abandon(req.name, waiter_id))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)
            raise

    async def _abandon(self, name: str, waiter_id: str) -> None:
        await self._store.write(lambda txn: self._leave_queue(txn, name, waiter_id, keeping=None))

    def _leave_queue(
        self, txn: WriteTxn, name: str, waiter_id: str, *, keeping: tuple[rq.AcquireLock, str] | None
    ) -> LockView | LockserviceError:
        """Takes the waiter out of the queue. `keeping` (the request and its fingerprint) when
        its wait timed out: a lock that reached it, or its request, meanwhile is the answer.
        None when its caller is gone: a lock granted to it meanwhile is given back.
        Errors are returned, not raised: the body must commit the waiter's removal."""
        if txn.remove_waiter(waiter_id):
            queued = txn.get_lock(name) or new_lock_state(name)
            return _lock_held(txn, queued, txn.count_waiters(name))
        if keeping is not None and keeping[0].request_id:
            req, request_print = keeping
            prior = txn.get_answer(request_key(req.request_id, req.owner))
            if prior is not None:
                # Granted to this attempt, or to a later attempt of its request that took its place.
                try:
                    return decode_lock_view(first_answer(prior, request_print, req.request_id))
                except RequestIdReused as reused:
                    return reused
        state = txn.get_lock(name)
        if state is not None and state.held and state.grant_id == waiter_id:
            if keeping is not None:
                return lock_view_in(txn, state)
            self._release_in(txn, state)
            return lock_view_in(txn, txn.get_lock(name) or state)
        # Dropped because its lease ended (the waiter's future already carries that error), or
        # taken over by a later attempt of its request that is still waiting.
        return _lock_held(txn, state or new_lock_state(name), txn.count_waiters(name))

    # -- release and read -------------------------------------------------------------------

    @staticmethod
    def _release_in(txn: WriteTxn, state: LockState) -> None:
        lease = txn.get_lease(state.lease_id)
        release_in(txn, state, expired=False)
        # A lease granted just for this lock ends with it, unless something else hangs on it.
        if (
            lease is not None
            and lease.owner_lock == state.name
            and not txn.lease_lock_names(lease.lease_id)
            and not txn.lease_resource_keys(lease.lease_id)
        ):
            txn.delete_lease(lease.lease_id)

    async def release(self, req: rq.ReleaseLock) -> LockView:
        check_key(req.name, self._limits, field="name")
        check_request_id(req.request_id, self._limits)
        if req.token < 1:
            raise InvalidArgument("token must be 1 or more", metadata={"field": "token"})

        request_print = fingerprint("ReleaseLock", req)

        def run(txn: WriteTxn) -> LockView:
            state = txn.get_lock(req.name)
            if state is None:
                raise LockNotFound(f"lock {req.name} was never acquired", metadata={"name": req.name})
            lease = txn.get_lease(state.lease_id) if state.held else None
            if not state.held or state.token != req.token:
                raise LockNotHeld(
                    f"token {req.token} does not hold lock {req.name}"
                    + (f"; token {state.token} does" if state.held else "; nobody holds it"),
                    metadata={"name": req.name, "token": str(state.token)},
                    conflict=lock_conflict(txn, state, f"token {req.token}"),
                )
            if lease is None or lease.expire_time_us <= txn.now_us:
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
            self._release_in(txn, state)
            return lock_view_in(txn, txn.get_lock(req.name) or state)

        # A retry of a release that succeeded gets its first answer, not LOCK_NOT_HELD.
        return await self._store.write(
            lambda txn: run_once(
                txn, req, request_print, lambda: run(txn), encode_lock_view, decode_lock_view
            )
        )

    async def get(self, name: str) -> LockView:
        check_key(name, self._limits, field="name")
        state = await self._store.get_lock(name)
        if state is None:
            raise LockNotFound(f"lock {name} was never acquired", metadata={"name": name})
        expire = 0
        if state.held:
            lease = await self._store.get_lease(state.lease_id)
            expire = lease.expire_time_us if lease is not None else 0
        return LockView(state=state, expire_time_us=expire, waiters=await self._store.waiter_count(name))
