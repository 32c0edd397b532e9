"""What a store keeps of the past: the last `history_versions` versions of each key's current
incarnation, and the events after `compacted_revision` for Watch, paged in whole revisions."""

from __future__ import annotations

import pytest

from lockservice.model import RESOURCE_OVERHEAD_BYTES, EventType
from lockservice.store.base import Store, WriteTxn
from tests.store.contract.bodies import delete, put, put_in
from tests.store.contract.conftest import Stores


def test_versions_beyond_the_history_depth_are_dropped(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        for index in range(6):
            await store.write(put("k", str(index).encode()))
        current = await store.get("k")
        assert current is not None and current.version == 6
        kept = await store.list_versions("k", current.create_revision, 100, 100, with_values=True)
        assert [(r.version, r.value) for r in kept] == [(6, b"5"), (5, b"4"), (4, b"3")]
        assert await store.get_version("k", current.create_revision, 3) is None
        four = await store.get_version("k", current.create_revision, 4)
        assert four is not None and (four.value, four.mod_revision) == (b"3", 4)

    stores.run(scenario, history_versions=3)


def test_a_new_incarnation_keeps_none_of_the_old_ones_versions(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        await store.write(put("k", b"old-1"))
        await store.write(put("k", b"old-2"))
        await store.write(delete("k"))
        assert await store.list_versions("k", 1, 100, 100, with_values=True) == []
        reborn = await store.write(put("k", b"new-1"))
        assert (reborn.version, reborn.create_revision) == (1, 4)
        assert await store.get_version("k", 1, 1) is None  # the old incarnation's version 1
        again = await store.get_version("k", 4, 1)
        assert again is not None and again.value == b"new-1"
        kept = await store.list_versions("k", 4, 100, 100, with_values=True)
        assert [(r.version, r.value) for r in kept] == [(1, b"new-1")]

    stores.run(scenario)


def test_version_pages_go_newest_first_below_a_version(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        for index in range(8):
            await store.write(put("k", b"x" * index))
        first = await store.list_versions("k", 1, 9, 3, with_values=True)
        assert [r.version for r in first] == [8, 7, 6]
        second = await store.list_versions("k", 1, 6, 3, with_values=True)
        assert [r.version for r in second] == [5, 4, 3]
        last = await store.list_versions("k", 1, 3, 3, with_values=True)
        assert [r.version for r in last] == [2, 1]
        bare = await store.list_versions("k", 1, 9, 2, with_values=False)
        assert [(r.version, r.value, r.content_type) for r in bare] == [
            (8, b"", "text/plain"),
            (7, b"", "text/plain"),
        ]

    stores.run(scenario)


def test_a_version_page_cut_by_bytes_ends_at_the_version_that_reaches_them(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        for _ in range(5):
            await store.write(put("k", b"x" * 100))
        each = len("k") + 100 + RESOURCE_OVERHEAD_BYTES
        page = await store.list_versions("k", 1, 6, 100, with_values=True, max_bytes=2 * each)
        assert [r.version for r in page] == [5, 4]
        one = await store.list_versions("k", 1, 6, 100, with_values=True, max_bytes=1)
        assert [r.version for r in one] == [5]  # always at least one

    stores.run(scenario)


async def _write_history(store: Store) -> None:
    """Revision 1: a PUT of a/1; 2: b/1 and a/2 together; 3: DELETE of a/1; 4: c/x; 5: EXPIRE of b/1."""
    await store.write(put("a/1", b"1"))

    def two(txn: WriteTxn) -> None:
        put_in(txn, "b/1", b"2")
        put_in(txn, "a/2", b"3")

    await store.write(two)
    await store.write(delete("a/1"))
    await store.write(put("c/x", b"4"))
    await store.write(delete("b/1", expired=True))


def test_events_record_every_change_in_order_with_the_state_it_left(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        await _write_history(store)
        events = await store.events_after(0, "", True, 100)
        assert [(e.revision, e.type, e.resource.key, e.resource.value) for e in events] == [
            (1, EventType.PUT, "a/1", b"1"),
            (2, EventType.PUT, "b/1", b"2"),
            (2, EventType.PUT, "a/2", b"3"),
            (3, EventType.DELETE, "a/1", b"1"),  # a deletion carries the last state
            (4, EventType.PUT, "c/x", b"4"),
            (5, EventType.EXPIRE, "b/1", b"2"),
        ]
        assert [e.revision for e in await store.events_after(3, "", True, 100)] == [4, 5]
        assert await store.events_after(5, "", True, 100) == []

    stores.run(scenario)


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("a/1", False, [(1, "a/1"), (3, "a/1")]),
        ("a/", True, [(1, "a/1"), (2, "a/2"), (3, "a/1")]),
        ("a/", False, []),
        ("b", True, [(2, "b/1"), (5, "b/1")]),
        ("", True, [(1, "a/1"), (2, "b/1"), (2, "a/2"), (3, "a/1"), (4, "c/x"), (5, "b/1")]),
    ],
)
def test_events_are_read_for_one_key_or_under_a_prefix(
    stores: Stores, key: str, prefix: bool, expected: list[tuple[int, str]]
) -> None:
    async def scenario(store: Store) -> None:
        await _write_history(store)
        events = await store.events_after(0, key, prefix, 100)
        assert [(e.revision, e.resource.key) for e in events] == expected

    stores.run(scenario)


def test_an_event_page_ends_with_a_whole_revision(stores: Stores) -> None:
    """A page cut by count (or by bytes) in the middle of a revision runs on to its end, so
    reading on from the page's last revision misses nothing."""

    async def scenario(store: Store) -> None:
        await _write_history(store)
        by_count = await store.events_after(0, "", True, 2)
        assert [(e.revision, e.resource.key) for e in by_count] == [(1, "a/1"), (2, "b/1"), (2, "a/2")]
        each = len("a/1") + 1 + RESOURCE_OVERHEAD_BYTES
        by_bytes = await store.events_after(0, "", True, 100, max_bytes=each + 1)
        assert [e.revision for e in by_bytes] == [1, 2, 2]
        at_least_one = await store.events_after(0, "", True, 100, max_bytes=1)
        assert [e.revision for e in at_least_one] == [1]
        rest = await store.events_after(by_count[-1].revision, "", True, 2)
        assert [e.revision for e in rest] == [3, 4]

    stores.run(scenario)


def test_events_after_the_compacted_revision_are_all_kept(stores: Stores) -> None:
    """With a watch window of 5 revisions, a store may drop the events of older revisions (when
    is its own choice), never those of the last 5, and never a revision past the one it says."""

    async def scenario(store: Store) -> None:
        for index in range(40):
            await store.write(put(f"k{index % 3}"))
        compacted = await store.compacted_revision()
        events = await store.events_after(compacted, "", True, 1000)
        # PostgreSQL prunes on a timer: it may have compacted further between the two reads,
        # and says so (the order Watch relies on: read a page, then the compacted revision).
        after = await store.compacted_revision()
        assert 0 <= compacted <= after <= 40 - 5
        assert [e.revision for e in events if e.revision > after] == list(range(after + 1, 41))
        assert all(e.revision > compacted for e in events)

    stores.run(scenario, watch_history_revisions=5)
