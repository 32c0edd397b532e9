"""Leases over a MemoryStore on a ManualClock: grant, keep-alive, revoke, and expiry (with what
hangs on a lease: its locks go to the next waiter, its resources are deleted as EXPIRE events)."""

from __future__ import annotations

import pytest

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.errors import InvalidTtl, LeaseNotFound, LimitExceeded, RequestIdReused
from lockservice.model import EventType, Lease, LeaseEnded
from tests.core.conftest import Core, make_core

SECOND = 1_000_000


def _not_found(lease_id: str) -> str:
    return f"lease {lease_id} does not exist (never granted, expired or revoked)"


def test_a_grant_starts_now_and_ends_a_ttl_later(core: Core) -> None:
    async def scenario() -> None:
        now = core.clock.now_us()
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=10, holder="alice"))
        assert lease == Lease(
            lease_id=lease.lease_id,
            holder="alice",
            ttl_seconds=10,
            grant_time_us=now,
            expire_time_us=now + 10 * SECOND,
        )
        assert len(lease.lease_id) == 32  # 128 random bits, no owner tag without authentication
        core.clock.advance(2.5)
        view = await core.leases.get(lease.lease_id)
        assert (view.lease, view.remaining_ms, view.lock_names, view.resource_keys) == (lease, 7500, (), ())

    core.run(scenario)


@pytest.mark.parametrize("ttl", [0, -1, 86401])
def test_a_ttl_out_of_bounds_is_refused(core: Core, ttl: int) -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidTtl) as refused:
            await core.leases.grant(rq.GrantLease(ttl_seconds=ttl))
        assert refused.value.message == f"ttl_seconds is {ttl}; it must be between 1 and 86400 seconds"
        assert refused.value.metadata == {"field": "ttl_seconds", "min": "1", "max": "86400"}

    core.run(scenario)


def test_a_keep_alive_extends_the_lease_to_a_full_ttl_from_now(core: Core) -> None:
    async def scenario() -> None:
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=10))
        core.clock.advance(9)
        refreshed = await core.leases.refresh(rq.RefreshLease(lease_id=lease.lease_id))
        assert refreshed.expire_time_us == core.clock.now_us() + 10 * SECOND
        assert refreshed.grant_time_us == lease.grant_time_us
        core.clock.advance(9)  # 18 s after the grant: alive thanks to the keep-alive
        assert (await core.leases.get(lease.lease_id)).remaining_ms == 1000

    core.run(scenario)


def test_a_lease_at_its_deadline_is_gone_and_cannot_be_revived(core: Core) -> None:
    async def scenario() -> None:
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=10))
        core.clock.advance(10)
        with pytest.raises(LeaseNotFound) as gone:
            await core.leases.get(lease.lease_id)
        assert (gone.value.message, gone.value.metadata) == (
            _not_found(lease.lease_id),
            {"lease_id": lease.lease_id},
        )
        with pytest.raises(LeaseNotFound) as late:
            await core.leases.refresh(rq.RefreshLease(lease_id=lease.lease_id))
        assert late.value.metadata == {"field": "lease_id", "lease_id": lease.lease_id}

    core.run(scenario)


def test_a_retried_refresh_does_not_extend_the_lease_twice(core: Core) -> None:
    async def scenario() -> None:
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=10))
        core.clock.advance(5)
        first = await core.leases.refresh(rq.RefreshLease(lease_id=lease.lease_id, request_id="r"))
        core.clock.advance(3)
        again = await core.leases.refresh(rq.RefreshLease(lease_id=lease.lease_id, request_id="r"))
        assert again == first
        assert (await core.leases.get(lease.lease_id)).lease == first
        with pytest.raises(RequestIdReused):
            await core.leases.refresh(rq.RefreshLease(lease_id="0" * 32, request_id="r"))

    core.run(scenario)


def test_a_revoke_releases_locks_to_the_next_waiter_and_deletes_resources(core: Core) -> None:
    async def scenario() -> None:
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=30, holder="alice"))
        await core.locks.acquire(rq.AcquireLock(name="m", lease_id=lease.lease_id, holder="alice"))
        await core.resources.create(rq.CreateResource(key="k1", value=b"1", lease_id=lease.lease_id))
        await core.resources.create(rq.CreateResource(key="k2", value=b"2", lease_id=lease.lease_id))
        await core.resources.create(rq.CreateResource(key="k3", value=b"3"))
        view = await core.leases.get(lease.lease_id)
        assert (view.lock_names, view.resource_keys) == (("m",), ("k1", "k2"))
        ended = await core.leases.revoke(rq.RevokeLease(lease_id=lease.lease_id))
        assert ended == LeaseEnded(revision=4, released_locks=("m",), deleted_keys=("k1", "k2"))
        assert [(e.type, e.resource.key, e.revision) for e in core.changes()[3:]] == [
            (EventType.EXPIRE, "k1", 4),
            (EventType.EXPIRE, "k2", 4),
        ]
        assert await core.store.get("k3") is not None
        assert not (await core.locks.get("m")).state.held
        with pytest.raises(LeaseNotFound) as again:
            await core.leases.revoke(rq.RevokeLease(lease_id=lease.lease_id))
        assert again.value.message == _not_found(lease.lease_id)

    core.run(scenario)


def test_an_expired_lease_is_ended_by_the_expiry_task(core: Core) -> None:
    async def scenario() -> None:
        short = await core.leases.grant(rq.GrantLease(ttl_seconds=10))
        long = await core.leases.grant(rq.GrantLease(ttl_seconds=60))
        await core.resources.create(rq.CreateResource(key="short", value=b"s", lease_id=short.lease_id))
        await core.resources.create(rq.CreateResource(key="long", value=b"l", lease_id=long.lease_id))
        await core.locks.acquire(rq.AcquireLock(name="m", lease_id=short.lease_id))
        assert await core.store.next_deadline() == short.expire_time_us
        core.clock.advance(10)
        await core.expire()
        assert await core.store.get_lease(short.lease_id) is None
        assert await core.store.get("short") is None
        assert await core.store.get("long") is not None
        assert not (await core.locks.get("m")).state.held
        assert [(e.type, e.resource.key, e.revision) for e in core.changes()[2:]] == [
            (EventType.EXPIRE, "short", 3)
        ]
        assert await core.store.next_deadline() == long.expire_time_us

    core.run(scenario)


def test_no_more_leases_than_the_limit() -> None:
    core = make_core(Limits(max_leases=2))

    async def scenario() -> None:
        first = await core.leases.grant(rq.GrantLease(ttl_seconds=10))
        await core.leases.grant(rq.GrantLease(ttl_seconds=20))
        with pytest.raises(LimitExceeded) as full:
            await core.leases.grant(rq.GrantLease(ttl_seconds=10))
        assert full.value.message == (
            "the store already holds 2 live leases, the limit; revoke leases you no longer need"
        )
        assert full.value.metadata == {"limit": "2", "quota": "leases"}
        core.clock.advance(10)  # the first is past its deadline, not yet reaped: it counts no more
        third = await core.leases.grant(rq.GrantLease(ttl_seconds=10))
        assert third.lease_id != first.lease_id

    core.run(scenario)
