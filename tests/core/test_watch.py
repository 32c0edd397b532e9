"""Watch over a MemoryStore: the first batch at the current revision, live changes in revision
order (one batch per revision), replay from a start revision then live with nothing missed or
repeated, prefixes, compaction, EXPIRE events, and the end of a watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.errors import InvalidArgument, LimitExceeded, RevisionCompacted, ShuttingDown
from lockservice.model import EventType, PutOperation, WatchBatch
from tests.core.conftest import Core, make_core


def _seen(batch: WatchBatch) -> tuple[int, list[tuple[EventType, str, bytes]]]:
    return batch.revision, [(e.type, e.resource.key, e.resource.value) for e in batch.events]


async def _close(stream: AsyncIterator[WatchBatch]) -> None:
    """Ends a watch as a caller who stops reading does."""
    assert isinstance(stream, AsyncGenerator)
    await stream.aclose()


async def _put(core: Core, key: str, value: bytes) -> None:
    await core.resources.update(rq.UpdateResource(key=key, value=value, allow_missing=True))


def test_a_watch_starts_at_the_current_revision_then_follows_changes_in_order(core: Core) -> None:
    async def scenario() -> None:
        await _put(core, "k", b"before")
        stream = core.watches.watch(rq.Watch(key="k"))
        assert _seen(await anext(stream)) == (1, [])
        await _put(core, "k", b"1")
        await _put(core, "other", b"x")
        await core.resources.delete(rq.DeleteResource(key="k"))
        assert _seen(await anext(stream)) == (2, [(EventType.PUT, "k", b"1")])
        assert _seen(await anext(stream)) == (4, [(EventType.DELETE, "k", b"1")])
        await _close(stream)
        assert core.watches.active == 0

    core.run(scenario)


def test_a_revision_changing_several_keys_is_one_batch(core: Core) -> None:
    async def scenario() -> None:
        stream = core.watches.watch(rq.Watch(key="p/", prefix=True))
        await anext(stream)
        await core.resources.transact(
            rq.Transact(
                compares=(),
                operations=(PutOperation("p/a", b"1"), PutOperation("q", b"2"), PutOperation("p/b", b"3")),
            )
        )
        assert _seen(await anext(stream)) == (
            1,
            [(EventType.PUT, "p/a", b"1"), (EventType.PUT, "p/b", b"3")],
        )
        await _close(stream)

    core.run(scenario)


def test_a_watch_resumed_from_a_revision_replays_then_follows_without_a_gap(core: Core) -> None:
    async def scenario() -> None:
        for value in (b"1", b"2", b"3"):
            await _put(core, "k", value)
        stream = core.watches.watch(rq.Watch(key="k", start_revision=2))
        assert _seen(await anext(stream)) == (3, [])
        assert _seen(await anext(stream)) == (2, [(EventType.PUT, "k", b"2")])
        assert _seen(await anext(stream)) == (3, [(EventType.PUT, "k", b"3")])
        await _put(core, "k", b"4")
        assert _seen(await anext(stream)) == (4, [(EventType.PUT, "k", b"4")])
        await _close(stream)

    core.run(scenario)


def test_a_compacted_start_revision_is_refused_with_the_oldest_kept() -> None:
    core = make_core(watch_history_revisions=3)

    async def scenario() -> None:
        for index in range(10):
            await _put(core, "k", str(index).encode())
        with pytest.raises(RevisionCompacted) as compacted:
            await anext(core.watches.watch(rq.Watch(key="k", start_revision=7)))
        assert compacted.value.message == "revision 7 is compacted; the oldest retained revision is 8"
        assert compacted.value.metadata == {"oldest_revision": "8", "start_revision": "7"}
        stream = core.watches.watch(rq.Watch(key="k", start_revision=8))
        await anext(stream)
        assert [(await anext(stream)).revision for _ in range(3)] == [8, 9, 10]
        await _close(stream)

    core.run(scenario)


def test_an_expired_lease_shows_as_expire_events(core: Core) -> None:
    async def scenario() -> None:
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=5))
        await core.resources.create(rq.CreateResource(key="s/1", value=b"v", lease_id=lease.lease_id))
        stream = core.watches.watch(rq.Watch(key="s/", prefix=True, start_revision=1))
        assert _seen(await anext(stream)) == (1, [])
        assert _seen(await anext(stream)) == (1, [(EventType.PUT, "s/1", b"v")])
        core.clock.advance(5)
        await core.expire()
        assert _seen(await anext(stream)) == (2, [(EventType.EXPIRE, "s/1", b"v")])
        await _close(stream)

    core.run(scenario)


def test_a_watcher_that_falls_behind_is_cut_off_and_can_resume() -> None:
    core = make_core(Limits(watch_queue_size=2))

    async def scenario() -> None:
        stream = core.watches.watch(rq.Watch(key="k"))
        await anext(stream)
        for value in (b"1", b"2", b"3"):
            await _put(core, "k", value)
        with pytest.raises(LimitExceeded) as behind:  # what it had queued is dropped with it
            await anext(stream)
        assert behind.value.message == (
            "the watcher fell more than 2 responses behind; "
            "watch again with start_revision set to the last revision received + 1"
        )
        assert behind.value.metadata == {"limit": "2"}
        resumed = core.watches.watch(rq.Watch(key="k", start_revision=1))
        await anext(resumed)
        assert [_seen(await anext(resumed)) for _ in range(3)] == [
            (1, [(EventType.PUT, "k", b"1")]),
            (2, [(EventType.PUT, "k", b"2")]),
            (3, [(EventType.PUT, "k", b"3")]),
        ]
        await _close(resumed)

    core.run(scenario)


def test_closing_the_watches_ends_every_watch(core: Core) -> None:
    async def scenario() -> None:
        stream = core.watches.watch(rq.Watch(key="k"))
        await anext(stream)
        core.watches.close()
        with pytest.raises(ShuttingDown):
            await anext(stream)

    core.run(scenario)


def test_a_negative_start_revision_is_refused(core: Core) -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidArgument) as negative:
            await anext(core.watches.watch(rq.Watch(key="k", start_revision=-1)))
        assert negative.value.metadata == {"field": "start_revision"}

    core.run(scenario)


def test_a_replay_overtaken_by_compaction_is_refused_not_cut_short() -> None:
    """Pruning may run between the compaction check and a replay page's read (on PostgreSQL any
    replica prunes on a timer): the page then starts past a gap. The replay must say so with
    REVISION_COMPACTED, naming where to resume, rather than deliver the rest as if whole."""
    core = make_core(watch_history_revisions=5)
    store = core.store
    read_events = store.events_after

    async def pruned_meanwhile(revision: int, key: str, prefix: bool, limit: int, max_bytes: int = 0) -> list:  # type: ignore[type-arg]
        store.events_after = read_events  # type: ignore[method-assign]
        for index in range(10):  # moves the compacted revision from 5 to 15
            await _put(core, f"k{index % 2}", b"later")
        return await read_events(revision, key, prefix, limit, max_bytes)

    async def scenario() -> None:
        for index in range(10):
            await _put(core, f"k{index % 2}", b"early")
        assert await store.compacted_revision() == 5
        store.events_after = pruned_meanwhile  # type: ignore[method-assign]
        stream = core.watches.watch(rq.Watch(key="k", prefix=True, start_revision=6))
        assert _seen(await anext(stream)) == (10, [])
        with pytest.raises(RevisionCompacted) as compacted:
            await anext(stream)
        assert compacted.value.message == (
            "revision 6 was compacted while this watch replayed it; the oldest retained revision is 16"
        )
        assert compacted.value.metadata == {"oldest_revision": "16", "start_revision": "6"}

    core.run(scenario)


def test_a_fan_out_to_many_watchers_lets_other_work_run_between_slices(core: Core) -> None:
    """Two changes reach 1,000 watchers of one key. Delivering to all of them in one turn of the
    event loop would hold every other call back until the last was woken (1.3 s for 10,000
    watchers over gRPC); the fan-out goes in slices, each watcher still in revision order."""
    watchers = 1_000

    async def scenario() -> None:
        streams = [core.watches.watch(rq.Watch(key="k")) for _ in range(watchers)]
        for stream in streams:
            await anext(stream)
        turns = 0
        turn_of_first_batch: list[int] = []
        seen: list[list[int]] = []

        async def consume(stream: AsyncIterator[WatchBatch]) -> None:
            first = await anext(stream)
            turn_of_first_batch.append(turns)
            second = await anext(stream)
            seen.append([first.revision, second.revision])

        async def count_turns() -> None:
            nonlocal turns
            while len(seen) < watchers:
                turns += 1
                await asyncio.sleep(0)

        consumers = [asyncio.create_task(consume(stream)) for stream in streams]
        await asyncio.sleep(0)  # every consumer waits for its next batch
        await _put(core, "k", b"1")
        await _put(core, "k", b"2")
        await asyncio.wait_for(count_turns(), timeout=30)
        await asyncio.gather(*consumers)
        assert seen == [[1, 2]] * watchers
        assert max(turn_of_first_batch) - min(turn_of_first_batch) >= 5
        for stream in streams:
            await _close(stream)

    core.run(scenario)
