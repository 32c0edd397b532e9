"""The asyncio client against a live server: the same calls, awaited, with the same typed errors."""

from __future__ import annotations

import asyncio

import pytest

from lockservice_client import (
    AlreadyExists,
    AsyncClient,
    LeaseNotFound,
    LockHeld,
    ResourceNotFound,
    VersionConflict,
)
from lockservice_client.messages import WatchEvent
from tests.conftest import ServerProcess


def test_async_writes_reads_and_conflicts(server: ServerProcess, prefix: str) -> None:
    key = f"{prefix}/k"

    async def scenario() -> list[object]:
        async with AsyncClient(server.address) as client:
            created = await client.create(key, b"v1")
            outcomes: list[object] = [created.version]
            try:
                await client.create(key, b"again")
            except AlreadyExists as error:
                outcomes.append((error.reason, error.conflict.current_version if error.conflict else None))
            try:
                await client.put(key, b"v2", expected_version=7)
            except VersionConflict as error:
                outcomes.append((error.reason, error.conflict.current_version if error.conflict else None))
            outcomes.append((await client.compare_and_set(key, b"v2", expected_value=b"v1")).version)
            outcomes.append([r.key async for r in client.list(f"{prefix}/", page_size=1)])
            outcomes.append([r.version async for r in client.versions(key)])
            outcomes.append((await client.delete(key)).resource.version)
            try:
                await client.get(key)
            except ResourceNotFound as error:
                outcomes.append(error.reason)
            return outcomes

    assert asyncio.run(scenario()) == [
        1,
        ("RESOURCE_EXISTS", 1),
        ("VERSION_MISMATCH", 1),
        2,
        [key],
        [2, 1],
        2,
        "RESOURCE_NOT_FOUND",
    ]


def test_async_watch_sees_a_live_change(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> tuple[str, str, int]:
        async with AsyncClient(server.address) as client:
            start = await client.create(f"{prefix}/k", b"1")
            events = client.watch(prefix, prefix=True, start_revision=start.mod_revision + 1)
            writer = asyncio.get_running_loop().call_later(
                0.2, lambda: asyncio.ensure_future(client.put(f"{prefix}/k", b"2"))
            )
            event = await asyncio.wait_for(anext(events), timeout=10)
            writer.cancel()
            await events.aclose()
            return WatchEvent.EventType.Name(event.type), event.resource.key, event.resource.version

    assert asyncio.run(scenario()) == ("PUT", f"{prefix}/k", 2)


def test_async_lease_calls(server: ServerProcess) -> None:
    async def scenario() -> tuple[int, str]:
        async with AsyncClient(server.address, holder="async-test") as client:
            lease = await client.grant_lease(30)
            refreshed = await client.refresh_lease(lease.lease_id)
            holder = (await client.get_lease(lease.lease_id)).holder
            await client.revoke_lease(lease.lease_id)
            with pytest.raises(LeaseNotFound):
                await client.get_lease(lease.lease_id)
            return refreshed.ttl_seconds, holder

    assert asyncio.run(scenario()) == (30, "async-test")


def test_async_lock_contention_fails_at_once_or_waits_its_turn(server: ServerProcess, prefix: str) -> None:
    name = f"{prefix}/lock"

    async def scenario() -> tuple[int, str, int, str]:
        async with AsyncClient(server.address) as client:
            async with client.lock(name, 5, holder="first") as first:
                with pytest.raises(LockHeld) as caught:
                    await client.acquire_lock(name, ttl_seconds=5, holder="second")
                waiting = asyncio.ensure_future(
                    client.acquire_lock(name, ttl_seconds=5, wait=5, holder="second")
                )
                await asyncio.sleep(0.2)
                assert not waiting.done()
            second = await waiting
            await client.revoke_lease(second.lease_id)
            holder_then = caught.value.conflict.holder if caught.value.conflict else ""
            return first.token, holder_then, second.token, second.holder

    first_token, holder_then, second_token, second_holder = asyncio.run(scenario())
    assert (holder_then, second_token, second_holder) == ("first", first_token + 1, "second")
