"""The lock queue: joining it, waiting in it, leaving it.

A queued caller is a row in the store's waiter queue plus a future here. The hand-over
(`handoff`) gives the lock to the first waiter inside the releasing transaction, and the
commit's `LockGranted` notice resolves that waiter's future: no polling, no thundering herd.
A wait that times out, or whose caller goes away, leaves the queue in a write of its own; a
lock that reached the waiter meanwhile is its answer, or is given back. When the store says
notices may have been lost (`NoticesLost`), every wait is checked against the store at once,
so a hand-over whose notice never arrived reaches its waiter then, not at its timeout.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from lockservice.codec import decode_lock_view
from lockservice.core import requests as rq
from lockservice.core.idempotency import Once, Pending
from lockservice.core.leases.grant import check_lease_capacity
from lockservice.core.leases.lifetime import require_live_lease
from lockservice.core.limits import Limits
from lockservice.core.locks.handoff import give_back
from lockservice.core.locks.views import lock_held, lock_view_in, new_lock_state
from lockservice.deadlines import begin_call
from lockservice.errors import LeaseNotFound, LimitExceeded, LockserviceError, RequestIdReused, ShuttingDown
from lockservice.model import LockGranted, LockView, LockWaiter, NoticesLost, WaiterFailed
from lockservice.store.base import Notice, Store, WriteTxn

__all__ = ["WAITER_GRACE_US", "Queue", "join_queue"]

T = TypeVar("T")

# A waiter's row outlives its wait by this much, so a caller whose timer fires while the lock
# is on its way still finds its grant (and keeps it) rather than losing it to the deadline.
WAITER_GRACE_US = 1_000_000


def join_queue(
    txn: WriteTxn,
    req: rq.AcquireLock,
    once: Once,
    waiter_id: str,
    lock_delay_us: int,
    wait_us: int,
    queued: int,
    limits: Limits,
) -> None:
    """Adds the caller behind the `queued` waiters already there, until `wait_us` from now.

    Its lease must be live; a caller without one needs room for the lease the hand-over will
    make. LIMIT_EXCEEDED when the queue is full."""
    if req.lease_id:
        require_live_lease(txn, req.lease_id)
    else:
        check_lease_capacity(txn, limits)  # the hand-over will make its lease
    if queued >= limits.max_waiters_per_lock:
        raise LimitExceeded(
            f"lock {req.name} already has {queued} waiters, the limit",
            metadata={"name": req.name, "limit": str(limits.max_waiters_per_lock)},
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
            request_id=once.key,
            fingerprint=once.fingerprint,
            deadline_us=txn.now_us + wait_us,
        )
    )


def _leave_queue(
    txn: WriteTxn, name: str, waiter_id: str, keeping: Once | None
) -> LockView | LockserviceError:
    """Takes the waiter out of the queue. `keeping` (the request) when its wait timed out: a
    lock that reached it, or its request, meanwhile is the answer. None when its caller is
    gone: a lock granted to it meanwhile is given back.
    Errors are returned, not raised: the body must commit the waiter's removal."""
    if txn.remove_waiter(waiter_id):
        queued = txn.get_lock(name) or new_lock_state(name)
        return lock_held(txn, queued, txn.count_waiters(name))
    if keeping is not None and keeping.key:
        prior = txn.get_answer(keeping.key)
        if prior is not None:
            # Granted to this attempt, or to a later attempt of its request that took its place.
            try:
                return decode_lock_view(keeping.first_answer(prior))
            except RequestIdReused as reused:
                return reused
    state = txn.get_lock(name)
    if state is not None and state.held and state.grant_id == waiter_id:
        if keeping is not None:
            return lock_view_in(txn, state)
        give_back(txn, state)
        return lock_view_in(txn, txn.get_lock(name) or state)
    # Dropped because its lease ended (the waiter's future already carries that error), or
    # taken over by a later attempt of its request that is still waiting.
    return lock_held(txn, state or new_lock_state(name), txn.count_waiters(name))


def _granted_views(txn: WriteTxn, waits: list[tuple[str, str]]) -> dict[str, LockView]:
    """Of `waits` (waiter_id, lock name), the ones whose lock the store shows granted to them."""
    granted = {}
    for waiter_id, name in waits:
        state = txn.get_lock(name)
        if state is not None and state.held and state.grant_id == waiter_id:
            granted[waiter_id] = lock_view_in(txn, state)
    return granted


class _WaitExpired(Exception):
    """A wait's timer fired before its grant (or failure) resolved its future."""


def _expire(future: asyncio.Future[LockView]) -> None:
    if not future.done():
        future.set_exception(_WaitExpired())


class Queue:
    """The waits of this process: a future per queued waiter, resolved by the store's notices."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: dict[str, asyncio.Future[LockView]] = {}
        self._names: dict[str, str] = {}  # waiter_id -> the lock it waits for
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
            elif isinstance(notice, NoticesLost) and self._waiting:
                self._clean_up(self._recheck_waits())

    async def _recheck_waits(self) -> None:
        """Resolves the waits whose lock the store shows granted to them (one write for all)."""
        waits = [
            (waiter_id, self._names[waiter_id])
            for waiter_id, wait in self._waiting.items()
            if not wait.done()
        ]
        try:
            granted = await self._store.write(lambda txn: _granted_views(txn, waits))
        except LockserviceError:
            return  # unreachable again: the next NoticesLost checks again, or the waits time out
        for waiter_id, view in granted.items():
            future = self._waiting.get(waiter_id)
            if future is not None and not future.done():
                future.set_result(view)

    def expect(self, waiter_id: str, name: str) -> asyncio.Future[LockView]:
        """The future the waiter's grant (or failure) will resolve. Registered before the write
        that queues it: a hand-over can commit before that write's answer comes back."""
        future: asyncio.Future[LockView] = asyncio.get_running_loop().create_future()
        self._waiting[waiter_id] = future
        self._names[waiter_id] = name
        return future

    def forget(self, waiter_id: str) -> None:
        self._waiting.pop(waiter_id, None)
        self._names.pop(waiter_id, None)

    async def wait(
        self, name: str, timeout_seconds: float, once: Once, waiter_id: str, future: asyncio.Future[LockView]
    ) -> LockView:
        """Waits for the waiter's grant on `future`, at most `timeout_seconds`; then leaves the
        queue.

        The call's task awaits the future itself, and a timer ends the wait: the grant's notice
        wakes the task in one step of the loop (wait_for over a shield took three, each a turn
        of the loop on the hand-over's path)."""
        timer = asyncio.get_running_loop().call_later(timeout_seconds, _expire, future)
        try:
            return await future
        except _WaitExpired:
            # Leave the queue; if the lock reached us (or this request) meanwhile, it is ours.
            outcome = await self._store.write(lambda txn: _leave_queue(txn, name, waiter_id, keeping=once))
            if isinstance(outcome, LockView):
                return outcome
            raise outcome from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                future.exception()  # resolved as the call was cancelled: seen, not logged as lost
            # The caller is gone: leave the queue, and give back a lock granted meanwhile.
            self._clean_up(self._abandon(name, waiter_id))
            raise
        finally:
            timer.cancel()

    async def run_joining_write(self, write: Awaitable[T], name: str, waiter_id: str) -> T:
        """Runs the acquire's write, which may queue `waiter_id`. A caller gone before the call
        resumes from it (the commit done, the loop late) leaves the queue as it would from
        `wait`: after the commit, never before."""
        running = asyncio.ensure_future(write)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            self._clean_up(self._abandon_if_queued(running, name, waiter_id))
            raise

    async def _abandon_if_queued(self, write: asyncio.Future[T], name: str, waiter_id: str) -> None:
        try:
            outcome = await write
        except Exception:
            return  # the write failed (its error was the call's answer): nothing was queued
        if isinstance(outcome, Pending):
            await self._abandon(name, waiter_id)

    def _clean_up(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs `work` past the cancellation of the call that needs it, held until done, and
        without that call's deadline: gRPC cancels a call at its deadline, when none is left."""
        context = contextvars.copy_context()
        context.run(begin_call, None)
        task = asyncio.get_running_loop().create_task(work, context=context)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _abandon(self, name: str, waiter_id: str) -> None:
        await self._store.write(lambda txn: _leave_queue(txn, name, waiter_id, keeping=None))
