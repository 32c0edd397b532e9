"""Fencing over a MemoryStore on a ManualClock: a write carrying a lock's token is applied only
while that token holds the lock; a stale one is refused with STALE_FENCE and the lock's state,
and nothing is written."""

from __future__ import annotations

import pytest

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.locks.fencing import check_fence_shape
from lockservice.errors import InvalidArgument, StaleFence
from lockservice.model import (
    ConflictState,
    DeleteOperation,
    ExpectVersion,
    Fence,
    PutOperation,
)
from tests.core.conftest import Core


async def _take(core: Core, holder: str) -> int:
    view = await core.locks.acquire(rq.AcquireLock(name="m", holder=holder, ttl_seconds=10))
    return view.state.token


def test_the_holding_token_fences_every_kind_of_write(core: Core) -> None:
    async def scenario() -> None:
        token = await _take(core, "alice")
        fence = Fence("m", token)
        created = await core.resources.update(
            rq.UpdateResource(key="k", value=b"1", allow_missing=True, fence=fence)
        )
        assert (created.version, created.value) == (1, b"1")
        cas = await core.resources.compare_and_set(
            rq.CompareAndSet(key="k", value=b"2", expectation=ExpectVersion(1), fence=fence)
        )
        assert cas.version == 2
        done = await core.resources.transact(
            rq.Transact(compares=(), operations=(PutOperation("j", b"j"),), fence=fence)
        )
        assert done.revision == 3
        deleted = await core.resources.delete(rq.DeleteResource(key="k", fence=fence))
        assert deleted.revision == 4

    core.run(scenario)


def test_a_token_of_a_former_holder_is_refused_with_the_current_one(core: Core) -> None:
    async def scenario() -> None:
        old = await _take(core, "alice")
        await core.locks.release(rq.ReleaseLock(name="m", token=old))
        view = await core.locks.acquire(rq.AcquireLock(name="m", holder="bob", ttl_seconds=10))
        with pytest.raises(StaleFence) as stale:
            await core.resources.update(
                rq.UpdateResource(key="k", value=b"x", allow_missing=True, fence=Fence("m", old))
            )
        error = stale.value
        assert (error.reason, error.message) == (
            "STALE_FENCE",
            "fence token 1 is stale: lock m is now held with token 2",
        )
        assert error.metadata == {"lock_name": "m", "token": "1", "current_token": "2"}
        assert error.conflict == ConflictState(
            key="m",
            current=None,
            expected="token 1",
            revision=0,
            holder="bob",
            token=2,
            expire_time_us=view.expire_time_us,
            lease_id=view.state.lease_id,
        )
        assert await core.store.get("k") is None
        assert await core.store.current_revision() == 0

    core.run(scenario)


def test_a_token_whose_lease_expired_is_refused_before_anyone_else_takes_the_lock(core: Core) -> None:
    """The paused holder's case: its lease is past its deadline, no one has reaped it yet."""

    async def scenario() -> None:
        token = await _take(core, "alice")
        core.clock.advance(10)
        with pytest.raises(StaleFence) as stale:
            await core.resources.compare_and_set(
                rq.CompareAndSet(key="k", value=b"x", expectation=ExpectVersion(1), fence=Fence("m", token))
            )
        assert stale.value.message == "fence token 1 is stale: its lease expired"
        assert stale.value.metadata == {"lock_name": "m", "token": "1", "current_token": "1"}
        assert (await core.locks.get("m")).state.held  # refused on the deadline, not on a reaping

    core.run(scenario)


def test_a_token_of_a_free_lock_or_of_a_lock_never_acquired_is_refused(core: Core) -> None:
    async def scenario() -> None:
        with pytest.raises(StaleFence) as never:
            await core.resources.delete(rq.DeleteResource(key="k", allow_missing=True, fence=Fence("n", 1)))
        assert never.value.message == "fence token 1 is stale: lock n was never acquired"
        assert never.value.metadata == {"lock_name": "n", "token": "1"}
        assert never.value.conflict is not None and never.value.conflict.token == 0
        token = await _take(core, "alice")
        await core.locks.release(rq.ReleaseLock(name="m", token=token))
        with pytest.raises(StaleFence) as free:
            await core.resources.transact(
                rq.Transact(compares=(), operations=(DeleteOperation("k"),), fence=Fence("m", token))
            )
        assert free.value.message == "fence token 1 is stale: nobody holds lock m"

    core.run(scenario)


def test_a_fence_token_below_one_is_malformed() -> None:
    with pytest.raises(InvalidArgument) as malformed:
        check_fence_shape(Fence("m", 0), Limits())
    assert (malformed.value.message, malformed.value.metadata) == (
        "fence.token must be 1 or more",
        {"field": "fence.token"},
    )
    check_fence_shape(None, Limits())
