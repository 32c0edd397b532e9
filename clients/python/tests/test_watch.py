"""Revisions through the client: a listing's revision, a watch's established revision, and a
watch that resumes by itself across a server restart with no gap and no duplicate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from lockservice_client import AsyncClient, Backoff, Client, Unavailable
from lockservice_client.messages import WatchEvent
from tests.conftest import ServerProcess

ServerFactory = Callable[..., ServerProcess]


def _seen(event: WatchEvent) -> tuple[str, str, int]:
    return WatchEvent.EventType.Name(event.type), event.resource.key, event.revision


def test_list_then_watch_from_the_listings_revision_misses_nothing(client: Client, prefix: str) -> None:
    created = [client.create(f"{prefix}/{n}", b"v").mod_revision for n in range(3)]
    listing = client.list(f"{prefix}/", page_size=2)
    with pytest.raises(RuntimeError):
        _ = listing.revision  # nothing read yet
    keys = [resource.key for resource in listing]
    assert keys == [f"{prefix}/{n}" for n in range(3)]
    assert listing.revision >= created[-1]
    changed = client.put(f"{prefix}/1", b"w")
    with client.watch(f"{prefix}/", prefix=True, start_revision=listing.revision + 1) as watch:
        assert _seen(next(watch)) == ("PUT", f"{prefix}/1", changed.mod_revision)
        assert watch.revision == changed.mod_revision


def test_watch_from_now_says_where_it_was_established(client: Client, prefix: str) -> None:
    before = client.create(f"{prefix}/k", b"1")
    with client.watch(f"{prefix}/k") as watch:
        established = watch.established()
        assert established >= before.mod_revision
        assert watch.revision == established
        after = client.put(f"{prefix}/k", b"2")
        assert _seen(next(watch)) == ("PUT", f"{prefix}/k", after.mod_revision)
        assert (watch.revision, watch.established()) == (after.mod_revision, established)


def test_watch_resumes_after_a_server_restart_without_gap_or_duplicate(
    server_factory: ServerFactory, prefix: str
) -> None:
    server = server_factory().start()
    with Client(server.address) as client:
        written = [client.put(f"{prefix}/{n}", b"v").mod_revision for n in range(3)]
        watch = client.watch(f"{prefix}/", prefix=True, start_revision=written[0])
        assert [event.revision for event in (next(watch) for _ in range(3))] == written
        server.stop()
        server.start()
        # Written while the watch has no stream: it must replay them from where it stood.
        written += [client.put(f"{prefix}/{n}", b"v").mod_revision for n in range(3, 6)]
        resumed = [_seen(next(watch)) for _ in range(3)]
        assert resumed == [("PUT", f"{prefix}/{n}", written[n]) for n in range(3, 6)]
        live = client.put(f"{prefix}/live", b"v")
        assert _seen(next(watch)) == ("PUT", f"{prefix}/live", live.mod_revision)
        watch.close()


@pytest.mark.parametrize("reconnect", [None, Backoff(attempts=2, initial=0.01)], ids=["off", "2-tries"])
def test_watch_raises_unavailable_once_it_may_not_reconnect(
    server_factory: ServerFactory, prefix: str, reconnect: Backoff | None
) -> None:
    server = server_factory().start()
    with Client(server.address) as client:
        watch = client.watch(f"{prefix}/", prefix=True, reconnect=reconnect)
        watch.established()
        server.kill9()
        with pytest.raises(Unavailable):
            next(watch)
        with pytest.raises(StopIteration):  # the watch has ended
            next(watch)


def test_async_list_and_watch_resume_the_same_way(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory().start()

    async def scenario() -> None:
        async with AsyncClient(server.address) as client:
            first = await client.create(f"{prefix}/a", b"1")
            listing = client.list(f"{prefix}/")
            assert [resource.key async for resource in listing] == [f"{prefix}/a"]
            assert listing.revision >= first.mod_revision
            async with client.watch(f"{prefix}/", prefix=True, start_revision=listing.revision + 1) as watch:
                assert await watch.established() >= listing.revision
                server.stop()
                server.start()
                second = await client.put(f"{prefix}/a", b"2")
                event = await asyncio.wait_for(anext(watch), timeout=30)
                assert _seen(event) == ("PUT", f"{prefix}/a", second.mod_revision)
                assert watch.revision == second.mod_revision

    asyncio.run(scenario())
