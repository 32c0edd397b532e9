"""`lock(name, ttl)`: acquire (optionally waiting), keep alive, fence, release, report a lost lease."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lockservice_client import (
    AsyncClient,
    AsyncHeldLock,
    Client,
    HeldLock,
    LeaseNotFound,
    LockHeld,
    LockLost,
    LockserviceError,
    StaleFence,
)
from tests.conftest import ServerProcess

TTL = 1  # the server's shortest lease: a third of it between refreshes


def test_lock_exposes_its_token_fences_writes_and_releases_on_exit(client: Client, prefix: str) -> None:
    name = f"{prefix}/lock"
    with client.lock(name, TTL, holder="job-1") as held:
        current = client.get_lock(name)
        assert (current.held, current.holder, current.token, current.lease_id) == (
            True,
            "job-1",
            held.token,
            held.lease_id,
        )
        assert (held.fence.lock_name, held.fence.token) == (name, held.token)
        written = client.put(f"{prefix}/data", b"v", fence=held.fence)
        assert written.version == 1
    assert client.get_lock(name).held is False
    with pytest.raises(LeaseNotFound):
        client.get_lease(held.lease_id)
    with pytest.raises(StaleFence):
        client.put(f"{prefix}/data", b"late", fence=held.fence)


def test_lease_is_kept_alive_past_its_ttl(client: Client, prefix: str) -> None:
    with client.lock(f"{prefix}/lock", TTL) as held:
        time.sleep(TTL * 2.5)
        assert not held.lost
        assert client.get_lock(f"{prefix}/lock").token == held.token
        assert client.get_lease(held.lease_id).ttl_seconds == TTL


def test_second_holder_gets_lock_held_or_waits_its_turn(client: Client, prefix: str) -> None:
    name = f"{prefix}/lock"
    release = threading.Event()
    first_token: list[int] = []
    taken = threading.Event()

    def first() -> None:
        with client.lock(name, TTL, holder="first") as held:
            first_token.append(held.token)
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    assert taken.wait(10)
    with pytest.raises(LockHeld) as caught, client.lock(name, TTL, holder="second"):
        pass
    assert caught.value.conflict is not None
    assert (caught.value.conflict.holder, caught.value.conflict.current_token) == ("first", first_token[0])
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    with client.lock(name, TTL, wait=10, holder="second") as held:
        assert held.token > first_token[0]
        assert time.monotonic() - started >= 0.25
    thread.join(10)


def test_body_is_told_when_the_lease_is_lost(client: Client, prefix: str) -> None:
    told: list[HeldLock] = []
    with pytest.raises(LockLost) as caught, client.lock(f"{prefix}/lock", TTL, on_lost=told.append) as held:
        client.revoke_lease(held.lease_id)  # as an expiry would, from the server's side
        assert held.wait_lost(timeout=TTL * 2)
        assert held.lost
        with pytest.raises(LockLost):
            held.check()
        with pytest.raises(StaleFence):
            client.put(f"{prefix}/data", b"v", fence=held.fence)
    assert told == [held]
    assert isinstance(held.lost_cause, LeaseNotFound)
    assert (caught.value.name, caught.value.token, caught.value.cause) == (
        held.name,
        held.token,
        held.lost_cause,
    )


def test_an_error_in_the_body_is_not_masked_by_a_lost_lock(client: Client, prefix: str) -> None:
    with pytest.raises(KeyError), client.lock(f"{prefix}/lock", TTL) as held:
        client.revoke_lease(held.lease_id)
        held.wait_lost(timeout=TTL * 2)
        raise KeyError("the body's own failure")


def test_async_lock_keeps_alive_fences_and_reports_loss(server: ServerProcess, prefix: str) -> None:
    name = f"{prefix}/lock"

    async def scenario() -> tuple[int, bool, bool, bool]:
        async with AsyncClient(server.address) as client:
            async with client.lock(name, TTL) as held:
                assert isinstance(held, AsyncHeldLock)
                await asyncio.sleep(TTL * 1.5)
                still_held = (await client.get_lock(name)).token == held.token and not held.lost
                written = await client.put(f"{prefix}/data", b"v", fence=held.fence)
            released = not (await client.get_lock(name)).held
            lost_reported = False
            try:
                async with client.lock(name, TTL) as again:
                    await client.revoke_lease(again.lease_id)
                    await asyncio.wait_for(again.wait_lost_async(), timeout=TTL * 2)
            except LockLost:
                lost_reported = True
            return written.version, still_held, released, lost_reported

    assert asyncio.run(scenario()) == (1, True, True, True)


def test_on_lost_runs_when_the_block_ends_with_stale_fence(client: Client, prefix: str) -> None:
    """The loss is found by the fenced write, before the keeper's next refresh would see it."""
    lost: list[BaseException | None] = []
    # The block's own error propagates, not LockLost.
    with (
        pytest.raises(StaleFence) as caught,
        client.lock(f"{prefix}/lock", 30, on_lost=lambda held: lost.append(held.lost_cause)) as held,
    ):
        client.revoke_lease(held.lease_id)
        client.put(f"{prefix}/data", b"v", fence=held.fence)
    assert lost == [caught.value]
    assert held.lost


def test_on_lost_runs_when_the_release_finds_the_lock_gone(client: Client, prefix: str) -> None:
    lost: list[BaseException | None] = []
    with (
        pytest.raises(LockLost) as caught,
        client.lock(f"{prefix}/lock", 30, on_lost=lambda held: lost.append(held.lost_cause)) as held,
    ):
        client.revoke_lease(held.lease_id)
    assert len(lost) == 1
    assert isinstance(lost[0], LockserviceError)
    assert caught.value.cause is lost[0]


def test_a_stale_fence_about_another_lock_is_not_a_loss(client: Client, prefix: str) -> None:
    lost: list[HeldLock] = []
    with client.lock(f"{prefix}/other", 30) as other:
        stale = other.fence
    with pytest.raises(StaleFence), client.lock(f"{prefix}/lock", 30, on_lost=lost.append) as held:
        client.put(f"{prefix}/data", b"v", fence=stale)
    assert (lost, held.lost) == ([], False)


def test_async_on_lost_runs_when_the_block_ends_with_stale_fence(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> tuple[list[BaseException | None], BaseException]:
        lost: list[BaseException | None] = []
        async with AsyncClient(server.address) as client:
            try:
                async with client.lock(
                    f"{prefix}/lock", 30, on_lost=lambda held: lost.append(held.lost_cause)
                ) as held:
                    await client.revoke_lease(held.lease_id)
                    await client.put(f"{prefix}/data", b"v", fence=held.fence)
            except StaleFence as error:
                return lost, error
        raise AssertionError("the fenced write went through")

    lost, error = asyncio.run(scenario())
    assert lost == [error]
