"""Locks over a MemoryStore on a ManualClock: acquire, release, the FIFO queue and its
hand-over, fencing tokens, a holder's expiry and the lock-delay after it."""

from __future__ import annotations

import asyncio

import pytest

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.errors import (
    InvalidArgument,
    LeaseNotFound,
    LimitExceeded,
    LockHeld,
    LockNotFound,
    LockNotHeld,
    RequestIdReused,
    ShuttingDown,
)
from lockservice.model import ConflictState, LockView
from tests.core.conftest import Core, make_core, queue, until

SECOND = 1_000_000


async def _has_waiters(core: Core, count: int) -> bool:
    return await core.store.waiter_count("m") == count


def _acquire(
    name: str = "m",
    holder: str = "a",
    ttl: int = 10,
    wait: float = 0.0,
    *,
    request_id: str = "",
    lock_delay_seconds: float | None = None,
) -> rq.AcquireLock:
    return rq.AcquireLock(
        name=name,
        holder=holder,
        ttl_seconds=ttl,
        wait_timeout_seconds=wait,
        request_id=request_id,
        lock_delay_seconds=lock_delay_seconds,
    )


async def _queue(core: Core, holder: str, name: str = "m", wait: float = 60.0) -> asyncio.Task[LockView]:
    """Starts an acquire that waits, and returns once it is queued."""
    queued = await core.store.waiter_count(name)
    task = asyncio.get_running_loop().create_task(core.locks.acquire(_acquire(name, holder, wait=wait)))

    async def joined() -> bool:
        return await core.store.waiter_count(name) == queued + 1 or task.done()

    await until(joined)
    return task


def test_a_free_lock_is_taken_with_a_lease_of_its_own(core: Core) -> None:
    async def scenario() -> None:
        now = core.clock.now_us()
        view = await core.locks.acquire(_acquire(holder="alice", ttl=10))
        state = view.state
        assert (state.name, state.held, state.holder, state.token) == ("m", True, "alice", 1)
        assert (state.acquire_time_us, state.lock_delay_us, state.available_time_us) == (now, 0, 0)
        assert (view.expire_time_us, view.waiters) == (now + 10 * SECOND, 0)
        lease = await core.store.get_lease(state.lease_id)
        assert lease is not None
        assert (lease.holder, lease.ttl_seconds, lease.expire_time_us, lease.owner_lock) == (
            "alice",
            10,
            now + 10 * SECOND,
            "m",
        )
        assert await core.locks.get("m") == view

    core.run(scenario)


def test_a_held_lock_is_refused_with_its_holder_token_and_expiry(core: Core) -> None:
    async def scenario() -> None:
        held = await core.locks.acquire(_acquire(holder="alice"))
        with pytest.raises(LockHeld) as refused:
            await core.locks.acquire(_acquire(holder="bob"))
        error = refused.value
        assert (error.reason, error.message) == ("LOCK_HELD", "lock m is held by alice (token 1)")
        assert error.metadata == {"name": "m", "token": "1", "waiters": "0"}
        assert error.conflict == ConflictState(
            key="m",
            current=None,
            expected="free",
            revision=0,
            holder="alice",
            token=1,
            expire_time_us=held.expire_time_us,
            lease_id=held.state.lease_id,
        )

    core.run(scenario)


def test_acquiring_again_under_the_holding_lease_changes_nothing(core: Core) -> None:
    async def scenario() -> None:
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=30, holder="alice"))
        first = await core.locks.acquire(rq.AcquireLock(name="m", lease_id=lease.lease_id, holder="alice"))
        again = await core.locks.acquire(rq.AcquireLock(name="m", lease_id=lease.lease_id, holder="alice"))
        assert again == first and again.state.token == 1
        assert await core.store.lease_lock_names(lease.lease_id) == ["m"]

    core.run(scenario)


def test_a_release_frees_the_lock_and_ends_the_lease_made_for_it(core: Core) -> None:
    async def scenario() -> None:
        held = await core.locks.acquire(_acquire())
        released = await core.locks.release(rq.ReleaseLock(name="m", token=1))
        assert (released.state.held, released.state.holder, released.state.token) == (False, "", 1)
        assert (released.expire_time_us, released.waiters) == (0, 0)
        assert await core.store.get_lease(held.state.lease_id) is None

    core.run(scenario)


def test_a_release_keeps_a_lease_the_caller_brought(core: Core) -> None:
    async def scenario() -> None:
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=30))
        await core.locks.acquire(rq.AcquireLock(name="m", lease_id=lease.lease_id))
        await core.locks.release(rq.ReleaseLock(name="m", token=1))
        assert await core.store.get_lease(lease.lease_id) == lease

    core.run(scenario)


def test_a_release_with_another_token_is_refused(core: Core) -> None:
    async def scenario() -> None:
        await core.locks.acquire(_acquire())
        with pytest.raises(LockNotHeld) as refused:
            await core.locks.release(rq.ReleaseLock(name="m", token=2))
        assert refused.value.message == "token 2 does not hold lock m; token 1 does"
        assert refused.value.metadata == {"name": "m", "token": "1"}
        assert refused.value.conflict is not None and refused.value.conflict.expected == "token 2"
        await core.locks.release(rq.ReleaseLock(name="m", token=1))
        with pytest.raises(LockNotHeld) as again:
            await core.locks.release(rq.ReleaseLock(name="m", token=1))
        assert again.value.message == "token 1 does not hold lock m; nobody holds it"

    core.run(scenario)


def test_a_release_of_a_lock_never_acquired_is_not_found(core: Core) -> None:
    async def scenario() -> None:
        with pytest.raises(LockNotFound) as missing:
            await core.locks.release(rq.ReleaseLock(name="never", token=1))
        assert (missing.value.message, missing.value.metadata) == (
            "lock never was never acquired",
            {"name": "never"},
        )
        with pytest.raises(LockNotFound):
            await core.locks.get("never")
        with pytest.raises(InvalidArgument) as zero:
            await core.locks.release(rq.ReleaseLock(name="m", token=0))
        assert zero.value.metadata == {"field": "token"}

    core.run(scenario)


def test_fencing_tokens_increase_with_every_acquisition(core: Core) -> None:
    async def scenario() -> None:
        tokens = []
        for holder in ("a", "b", "c", "d"):
            view = await core.locks.acquire(_acquire(holder=holder))
            tokens.append(view.state.token)
            await core.locks.release(rq.ReleaseLock(name="m", token=view.state.token))
        assert tokens == [1, 2, 3, 4]
        other = await core.locks.acquire(_acquire(name="n"))
        assert other.state.token == 1  # tokens count per lock name

    core.run(scenario)


def test_the_queue_is_served_first_come_first_served_with_the_next_token(core: Core) -> None:
    async def scenario() -> None:
        await core.locks.acquire(_acquire(holder="a"))
        waiting = [await _queue(core, holder) for holder in ("b", "c", "d")]
        assert (await core.locks.get("m")).waiters == 3
        with pytest.raises(LockHeld) as refused:
            await core.locks.acquire(_acquire(holder="e"))
        assert refused.value.message == "lock m is held by a (token 1); 3 waiter(s) queued"
        token = 1
        for task, holder in zip(waiting, ("b", "c", "d"), strict=True):
            await core.locks.release(rq.ReleaseLock(name="m", token=token))
            view = await task
            token += 1
            assert (view.state.holder, view.state.token, view.state.held) == (holder, token, True)
            lease = await core.store.get_lease(view.state.lease_id)
            assert lease is not None and (lease.holder, lease.owner_lock) == (holder, "m")
            assert view.expire_time_us == lease.expire_time_us
        assert (await core.locks.get("m")).waiters == 0

    core.run(scenario)


def test_the_hand_over_happens_in_the_release_itself(core: Core) -> None:
    """The release's answer already shows the next holder: no window where the lock is free."""

    async def scenario() -> None:
        await core.locks.acquire(_acquire(holder="a"))
        task = await _queue(core, "b")
        after = await core.locks.release(rq.ReleaseLock(name="m", token=1))
        assert (after.state.held, after.state.holder, after.state.token) == (True, "b", 2)
        assert (await task).state == after.state

    core.run(scenario)


def test_an_expired_holder_loses_the_lock_to_the_next_caller_without_the_expiry_task(core: Core) -> None:
    async def scenario() -> None:
        held = await core.locks.acquire(_acquire(holder="a", ttl=10))
        core.clock.advance(9.999999)
        with pytest.raises(LockHeld):
            await core.locks.acquire(_acquire(holder="b"))
        core.clock.advance(us=1)  # the lease's deadline: it is over
        taken = await core.locks.acquire(_acquire(holder="b"))
        assert (taken.state.holder, taken.state.token) == ("b", 2)
        assert await core.store.get_lease(held.state.lease_id) is None

    core.run(scenario)


def test_an_expired_holder_hands_the_lock_to_the_first_waiter(core: Core) -> None:
    async def scenario() -> None:
        held = await core.locks.acquire(_acquire(holder="a", ttl=10))
        task = await _queue(core, "b", wait=60)
        core.clock.advance(10)
        with pytest.raises(LockNotHeld) as lost:
            await core.locks.release(rq.ReleaseLock(name="m", token=1))
        assert lost.value.message == "token 1 lost lock m: its lease expired"
        await core.expire()
        view = await task
        assert (view.state.holder, view.state.token) == ("b", 2)
        assert await core.store.get_lease(held.state.lease_id) is None

    core.run(scenario)


def test_after_an_expiry_the_lock_delay_keeps_the_lock_unavailable(core: Core) -> None:
    async def scenario() -> None:
        await core.locks.acquire(_acquire(holder="a", ttl=10, lock_delay_seconds=5.0))
        core.clock.advance(10)
        await core.expire()
        state = (await core.locks.get("m")).state
        assert (state.held, state.available_time_us) == (False, core.clock.now_us() + 5 * SECOND)
        with pytest.raises(LockHeld) as delayed:
            await core.locks.acquire(_acquire(holder="b"))
        assert delayed.value.message == "lock m is in its lock-delay after its holder's lease expired"
        core.clock.advance(5)
        taken = await core.locks.acquire(_acquire(holder="b"))
        assert (taken.state.holder, taken.state.token) == ("b", 2)

    core.run(scenario)


def test_a_waiter_queued_through_a_lock_delay_gets_the_lock_when_it_ends(core: Core) -> None:
    async def scenario() -> None:
        await core.locks.acquire(_acquire(holder="a", ttl=10, lock_delay_seconds=5.0))
        core.clock.advance(10)
        await core.expire()
        task = await _queue(core, "b")
        assert await core.store.next_deadline() == core.clock.now_us() + 5 * SECOND
        core.clock.advance(5)
        await core.expire()
        view = await task
        assert (view.state.holder, view.state.token) == ("b", 2)

    core.run(scenario)


def test_a_released_lock_has_no_lock_delay(core: Core) -> None:
    async def scenario() -> None:
        await core.locks.acquire(_acquire(holder="a", lock_delay_seconds=5.0))
        await core.locks.release(rq.ReleaseLock(name="m", token=1))
        taken = await core.locks.acquire(_acquire(holder="b"))
        assert (taken.state.holder, taken.state.token) == ("b", 2)

    core.run(scenario)


def test_a_waiter_whose_lease_ends_is_told_so(core: Core) -> None:
    async def scenario() -> None:
        await core.locks.acquire(_acquire(holder="a"))
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=30, holder="b"))
        request = rq.AcquireLock(name="m", lease_id=lease.lease_id, holder="b", wait_timeout_seconds=60)
        task = asyncio.get_running_loop().create_task(core.locks.acquire(request))
        await until(lambda: _has_waiters(core, 1))
        await core.leases.revoke(rq.RevokeLease(lease_id=lease.lease_id))
        with pytest.raises(LeaseNotFound) as ended:
            await task
        assert ended.value.message == f"lease {lease.lease_id} ended while waiting for lock m"
        assert ended.value.metadata == {"name": "m"}
        assert (await core.locks.get("m")).waiters == 0

    core.run(scenario)


def test_a_wait_that_times_out_leaves_the_queue(core: Core) -> None:
    async def scenario() -> None:
        await core.locks.acquire(_acquire(holder="a"))
        with pytest.raises(LockHeld) as timed_out:
            await core.locks.acquire(_acquire(holder="b", wait=0.001))
        assert timed_out.value.message == "lock m is held by a (token 1)"
        assert (await core.locks.get("m")).waiters == 0

    core.run(scenario)


def test_a_cancelled_wait_leaves_the_queue(core: Core) -> None:
    async def scenario() -> None:
        await core.locks.acquire(_acquire(holder="a"))
        task = await _queue(core, "b")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: _has_waiters(core, 0))
        after = await core.locks.release(rq.ReleaseLock(name="m", token=1))
        assert (after.state.held, after.waiters) == (False, 0)

    core.run(scenario)


def test_a_lease_that_has_expired_cannot_take_a_lock(core: Core) -> None:
    async def scenario() -> None:
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=5))
        core.clock.advance(5)
        with pytest.raises(LeaseNotFound) as gone:
            await core.locks.acquire(rq.AcquireLock(name="m", lease_id=lease.lease_id))
        assert gone.value.metadata == {"field": "lease_id", "lease_id": lease.lease_id}

    core.run(scenario)


def test_a_queue_at_its_limit_refuses_one_more() -> None:
    core = make_core(Limits(max_waiters_per_lock=2))

    async def scenario() -> None:
        await core.locks.acquire(_acquire(holder="a"))
        waiting = [await _queue(core, holder) for holder in ("b", "c")]
        with pytest.raises(LimitExceeded) as full:
            await core.locks.acquire(_acquire(holder="d", wait=60))
        assert full.value.message == "lock m already has 2 waiters, the limit"
        assert full.value.metadata == {"name": "m", "limit": "2"}
        core.locks.close()
        for task in waiting:
            with pytest.raises(ShuttingDown, match="the server is shutting down"):
                await task

    core.run(scenario)


def test_a_retried_acquire_gets_its_first_answer_and_another_payload_is_refused(core: Core) -> None:
    async def scenario() -> None:
        first = await core.locks.acquire(_acquire(holder="a", request_id="r1"))
        core.clock.advance(1)
        again = await core.locks.acquire(_acquire(holder="a", request_id="r1"))
        assert again == first
        with pytest.raises(RequestIdReused) as reused:
            await core.locks.acquire(_acquire(holder="someone else", request_id="r1"))
        assert reused.value.metadata == {"field": "request_id", "request_id": "r1"}
        assert (await core.locks.get("m")).state.token == 1

    core.run(scenario)


def test_a_retried_acquire_takes_over_its_queued_waiter(core: Core) -> None:
    """The retry keeps the first attempt's place and gets its grant; nothing is queued twice."""

    async def scenario() -> None:
        await core.locks.acquire(_acquire(holder="a"))
        first = asyncio.get_running_loop().create_task(
            core.locks.acquire(_acquire(holder="b", wait=60, request_id="r"))
        )
        await until(lambda: _has_waiters(core, 1))
        third = await _queue(core, "c")
        before = await queue(core, "m")
        retry = asyncio.get_running_loop().create_task(
            core.locks.acquire(_acquire(holder="b", wait=60, request_id="r"))
        )

        async def taken_over() -> bool:
            return (await queue(core, "m"))[0].waiter_id != before[0].waiter_id

        await until(taken_over)
        after = await queue(core, "m")
        assert [(w.holder, w.seq) for w in after] == [(w.holder, w.seq) for w in before]
        await core.locks.release(rq.ReleaseLock(name="m", token=1))
        granted = await retry
        assert (granted.state.holder, granted.state.token) == ("b", 2)
        core.locks.close()
        for task in (first, third):  # the attempt taken over has nothing left to wait for
            with pytest.raises(ShuttingDown):
                await task

    core.run(scenario)


def test_an_acquire_names_either_a_lease_or_a_ttl(core: Core) -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidArgument) as both:
            await core.locks.acquire(rq.AcquireLock(name="m", lease_id="x", ttl_seconds=10))
        assert (both.value.message, both.value.metadata) == (
            "set lease_id or ttl_seconds, not both",
            {"field": "lease"},
        )
        with pytest.raises(InvalidArgument) as wait:
            await core.locks.acquire(_acquire(wait=-1))
        assert wait.value.metadata == {"field": "wait_timeout", "max": "3600"}

    core.run(scenario)
