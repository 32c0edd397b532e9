"""The store revision: one per committed change, shared by every key a body changes, increasing
by exactly one from commit to commit (no gaps, whatever fails or runs concurrently)."""

from __future__ import annotations

import asyncio

import pytest

from lockservice.errors import VersionMismatch
from lockservice.store.base import Store, WriteTxn
from tests.store.contract.bodies import put, put_in
from tests.store.contract.conftest import Stores


def test_a_fresh_store_is_at_revision_zero(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        assert await store.current_revision() == 0
        assert await store.compacted_revision() == 0
        assert await store.write(lambda txn: txn.current_revision()) == 0
        assert await store.events_after(0, "", True, 100) == []

    stores.run(scenario)


def test_next_revision_is_taken_once_per_body_and_shared_by_its_keys(stores: Stores) -> None:
    def three_keys(txn: WriteTxn) -> tuple[int, int, int, list[int]]:
        before = txn.current_revision()
        first = txn.next_revision()
        again = txn.next_revision()
        mods = [put_in(txn, key, b"v").mod_revision for key in ("a", "b", "c")]
        return before, first, again, mods

    async def scenario(store: Store) -> None:
        await store.write(put("x"))
        assert await store.write(three_keys) == (1, 2, 2, [2, 2, 2])
        assert await store.current_revision() == 2

    stores.run(scenario)


def test_a_body_that_changes_nothing_takes_no_revision(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        await store.write(put("k"))
        assert await store.write(lambda txn: txn.get("k") is not None)
        assert await store.current_revision() == 1
        assert (await store.write(put("k"))).mod_revision == 2

    stores.run(scenario)


def test_revisions_are_gap_free_under_concurrent_writes_and_failures(stores: Stores) -> None:
    def failing(txn: WriteTxn) -> None:
        put_in(txn, "failed", b"x")
        raise VersionMismatch("abort")

    async def scenario(store: Store) -> None:
        writes = [store.write(put(f"k{i % 5}")) if i % 4 else store.write(failing) for i in range(40)]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, VersionMismatch)]
        assert len(failures) == 10
        assert await store.current_revision() == 30
        events = await store.events_after(0, "", True, 100)
        assert [e.revision for e in events] == list(range(1, 31))
        # Each key's versions count up by one in revision order.
        for key in (f"k{i}" for i in range(5)):
            assert [e.resource.version for e in events if e.resource.key == key] == [1, 2, 3, 4, 5, 6]

    stores.run(scenario)


@pytest.mark.parametrize("writes", [1, 7])
def test_the_current_revision_is_the_last_committed_one(stores: Stores, writes: int) -> None:
    async def scenario(store: Store) -> None:
        for index in range(writes):
            resource = await store.write(put("k", str(index).encode()))
            assert resource.mod_revision == index + 1
            assert await store.current_revision() == index + 1

    stores.run(scenario)
