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
