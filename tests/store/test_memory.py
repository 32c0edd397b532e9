"""MemoryStore's own choices, beyond the contract (tests/store/contract/): its clock is
injected, it compacts to exactly the watch window and forgets answers exactly at their
retention, its journal undoes in reverse order, and a listener's bug never fails a commit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lockservice.errors import StoreUnavailable
from lockservice.store.base import Notice, WriteTxn
from lockservice.store.memory import ManualClock, MemoryStore, SecondAnswer
from lockservice.store.memory.journal import Journal
from tests.store.contract.bodies import lease, put


def test_a_manual_clock_moves_only_forward_and_only_when_told() -> None:
    clock = ManualClock(start_us=1_000)
    assert clock.now_us() == clock.now_us() == 1_000
    assert clock.advance(1.5) == 1_501_000
    assert clock.advance(us=7) == 1_501_007
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    assert clock.now_us() == 1_501_007


def test_the_store_and_its_bodies_read_the_injected_clock() -> None:
    clock = ManualClock(start_us=5_000_000)
    store = MemoryStore(clock=clock)

    async def scenario() -> None:
        assert store.now_us() == 5_000_000
        assert await store.write(lambda txn: txn.now_us) == 5_000_000
        clock.advance(2)
        assert (await store.write(put("k"))).create_time_us == 7_000_000

    asyncio.run(scenario())


def test_a_lease_is_found_expired_exactly_at_its_deadline() -> None:
    clock = ManualClock(start_us=0)
    store = MemoryStore(clock=clock)

    def due(txn: WriteTxn) -> list[str]:
        return [x.lease_id for x in txn.expired_leases(txn.now_us, 10)]

    async def scenario() -> None:
        await store.write(lambda txn: txn.put_lease(lease("l", 10_000_000)))
        clock.advance(us=9_999_999)
        assert await store.write(due) == []
        clock.advance(us=1)
        assert await store.write(due) == ["l"]

    asyncio.run(scenario())


def test_events_are_compacted_to_exactly_the_watch_window() -> None:
    store = MemoryStore(watch_history_revisions=4)

    async def scenario() -> None:
        for _ in range(4):
            await store.write(put("k"))
        assert await store.compacted_revision() == 0
        await store.write(put("k"))
        assert await store.compacted_revision() == 1
        for _ in range(5):
            await store.write(put("k"))
        assert await store.compacted_revision() == 6
        assert [e.revision for e in await store.events_after(0, "", True, 100)] == [7, 8, 9, 10]

    asyncio.run(scenario())


def test_answers_are_forgotten_once_older_than_their_retention() -> None:
    clock = ManualClock(start_us=0)
    store = MemoryStore(clock=clock, request_id_retention_seconds=10)

    async def scenario() -> None:
        await store.write(lambda txn: txn.save_answer("old", "p", "a"))
        clock.advance(5)
        await store.write(lambda txn: txn.save_answer("new", "p", "a"))
        clock.advance(5)
        await store.write(lambda txn: None)
        assert (await store.answered("old"), await store.answered("new")) == (True, True)
        clock.advance(us=1)
        await store.write(lambda txn: None)
        assert (await store.answered("old"), await store.answered("new")) == (False, True)
        with pytest.raises(SecondAnswer, match="'new' is answered already"):
            await store.write(lambda txn: txn.save_answer("new", "p", "b"))

    asyncio.run(scenario())


def test_the_journal_undoes_every_change_newest_first() -> None:
    table: dict[str, int] = {"kept": 1, "removed": 2}
    items = [1]
    journal = Journal()
    journal.set(table, "kept", 10)
    journal.set(table, "kept", 11)
    journal.set(table, "new", 3)
    assert journal.pop(table, "removed") == 2
    assert journal.pop(table, "never") is None
    journal.set(table, "removed", 20)  # removed, then written again
    journal.append(items, 2)
    journal.rollback()
    assert (table, items) == ({"kept": 1, "removed": 2}, [1])
    journal.rollback()  # nothing left to undo
    assert table == {"kept": 1, "removed": 2}


def test_a_failing_listener_does_not_fail_the_commit_or_the_others() -> None:
    store = MemoryStore()
    heard: list[Notice] = []
    reported: list[dict[str, Any]] = []

    def broken(notices: list[Notice]) -> None:
        raise RuntimeError("a bug in a listener")

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        store.subscribe(broken)
        store.subscribe(heard.extend)
        written = await store.write(put("k"))
        assert await store.get("k") == written
        assert len(heard) == 1
        assert [(c["message"], str(c["exception"])) for c in reported] == [
            ("a store listener failed", "a bug in a listener")
        ]

    asyncio.run(scenario())


def test_reads_of_a_closed_store_are_refused() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        await store.close()
        with pytest.raises(StoreUnavailable, match="the store is closed"):
            await store.get("k")

    asyncio.run(scenario())
