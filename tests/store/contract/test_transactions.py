"""Atomic writes: what a body reads and writes, compare-and-set between concurrent bodies, and
the rollback of a body that raises (every change it made, on every table)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from lockservice.errors import StoreUnavailable, VersionMismatch
from lockservice.model import ChangeEvent, EventType, LockGranted, LockView, Resource
from lockservice.store.base import Store, WriteTxn
from tests.store.contract.bodies import delete, lease, lock, put, put_in, waiter
from tests.store.contract.conftest import Heard, Stores


def test_a_body_reads_its_own_writes_and_readers_see_them_after_commit(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        def body(txn: WriteTxn) -> tuple[Resource | None, Resource | None]:
            before = txn.get("k")
            put_in(txn, "k", b"1")
            return before, txn.get("k")

        before, inside = await store.write(body)
        assert before is None
        assert inside is not None and (inside.value, inside.version, inside.mod_revision) == (b"1", 1, 1)
        assert await store.get("k") == inside
        assert await store.get("missing") is None

    stores.run(scenario)


def test_a_put_replaces_the_current_state_field_for_field(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        first = await store.write(put("k", b"1"))
        second = await store.write(put("k", b"2"))
        assert second == Resource(
            key="k",
            value=b"2",
            content_type="text/plain",
            version=2,
            create_revision=1,
            mod_revision=2,
            create_time_us=first.create_time_us,
            update_time_us=second.update_time_us,
        )
        assert await store.get("k") == second

    stores.run(scenario)


def test_a_delete_removes_the_key_and_a_delete_of_a_missing_key_changes_nothing(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        await store.write(put("k"))
        assert await store.write(delete("k")) == 2
        assert await store.get("k") is None

        def delete_missing(txn: WriteTxn) -> int:
            txn.delete("never")  # no revision taken: nothing to record
            return txn.current_revision()

        assert await store.write(delete_missing) == 2
        assert await store.current_revision() == 2
        events = await store.events_after(0, "", True, 100)
        assert [e.type for e in events] == [EventType.PUT, EventType.DELETE]

    stores.run(scenario)


def test_a_change_without_a_revision_is_refused(stores: Stores) -> None:
    """`put` and `delete` record an event at the body's revision: one must be taken first."""

    async def scenario(store: Store) -> None:
        await store.write(put("k"))
        resource = await store.get("k")
        assert resource is not None
        with pytest.raises(RuntimeError, match="call next_revision"):
            await store.write(lambda txn: txn.put(resource))
        with pytest.raises(RuntimeError, match="call next_revision"):
            await store.write(lambda txn: txn.delete("k"))
        assert await store.get("k") == resource
        assert await store.current_revision() == 1

    stores.run(scenario)


def test_concurrent_read_compare_write_bodies_lose_no_update(stores: Stores) -> None:
    """Sixteen bodies at once each read the counter and write it plus one: every body decides on
    the latest committed state, so the counter ends at 16 with 16 versions."""

    def increment(txn: WriteTxn) -> int:
        current = txn.get("counter")
        count = 0 if current is None else int(current.value)
        return put_in(txn, "counter", str(count + 1).encode()).version

    async def scenario(store: Store) -> None:
        versions = await asyncio.gather(*(store.write(increment) for _ in range(16)))
        assert sorted(versions) == list(range(1, 17))
        counter = await store.get("counter")
        assert counter is not None and (counter.value, counter.version) == (b"16", 16)

    stores.run(scenario)


def test_a_compare_that_fails_inside_the_body_aborts_it(stores: Stores) -> None:
    """Compare-and-set as the core writes it: read, compare, raise a domain error to abort."""

    def set_if_version(expected: int, value: bytes) -> Callable[[WriteTxn], Resource]:
        def body(txn: WriteTxn) -> Resource:
            current = txn.get("k")
            if current is None or current.version != expected:
                raise VersionMismatch(f"k is not at version {expected}")
            return put_in(txn, "k", value)

        return body

    async def scenario(store: Store) -> None:
        await store.write(put("k", b"1"))
        outcomes = await asyncio.gather(
            store.write(set_if_version(1, b"a")),
            store.write(set_if_version(1, b"b")),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, Resource)]
        losers = [o for o in outcomes if isinstance(o, VersionMismatch)]
        assert len(winners) == 1 and len(losers) == 1
        assert str(losers[0]) == "k is not at version 1"
        assert await store.get("k") == winners[0]
        assert winners[0].version == 2 and await store.current_revision() == 2

    stores.run(scenario)


def _everything_then_fail(txn: WriteTxn) -> None:
    """Changes every table a body can change, then raises."""
    put_in(txn, "kept", b"changed")
    put_in(txn, "new", b"x")
    txn.delete("gone")
    txn.put_lease(lease("new-lease"))
    txn.put_lease(lease("kept-lease", 5))
    txn.delete_lease("doomed-lease")
    txn.put_lock(lock("free-lock", lease_id="new-lease", token=9))
    txn.add_waiter(waiter("new-waiter", "queued-lock"))
    txn.remove_waiter("old-waiter")
    txn.save_answer("request", "print", "answer")
    txn.notify(
        LockGranted(waiter_id="w", lock=LockView(state=lock("free-lock"), expire_time_us=0, waiters=0))
    )
    raise VersionMismatch("refused after changing everything")


def test_a_failing_body_rolls_back_every_change_it_made(stores: Stores) -> None:
    def setup(txn: WriteTxn) -> None:
        put_in(txn, "kept", b"original")
        put_in(txn, "gone", b"g")
        txn.put_lease(lease("kept-lease"))
        txn.put_lease(lease("doomed-lease"))
        txn.put_lock(lock("free-lock", token=3))
        txn.add_waiter(waiter("old-waiter", "queued-lock"))

    def snapshot(txn: WriteTxn) -> tuple[object, ...]:
        return (
            txn.get("kept"),
            txn.get("new"),
            txn.get("gone"),
            txn.get_lease("new-lease"),
            txn.get_lease("kept-lease"),
            txn.get_lease("doomed-lease"),
            txn.lease_rows(),
            txn.get_lock("free-lock"),
            [w.waiter_id for w in txn.lock_waiters("queued-lock")],
            txn.get_answer("request"),
            txn.current_revision(),
        )

    async def scenario(store: Store) -> None:
        heard = Heard(store)
        await store.write(setup)
        before = await store.write(snapshot)
        with pytest.raises(VersionMismatch, match="refused after changing everything"):
            await store.write(_everything_then_fail)
        assert await store.write(snapshot) == before
        assert await store.waiter_count("queued-lock") == 1
        assert not await store.answered("request")
        # Its revision was never used: the next change takes the one after the last commit.
        assert (await store.write(put("after"))).mod_revision == 2
        assert [e.revision for e in await store.events_after(1, "", True, 100)] == [2]
        # Nothing it notified or changed was published.
        await heard.through(2)
        assert [(n.resource.key, n.revision) for n in heard.notices if isinstance(n, ChangeEvent)] == [
            ("kept", 1),
            ("gone", 1),
            ("after", 2),
        ]
        assert len(heard.notices) == 3

    stores.run(scenario)


def test_a_failing_body_fails_alone_among_concurrent_writes(stores: Stores) -> None:
    def failing(txn: WriteTxn) -> None:
        put_in(txn, "bad", b"x")
        raise VersionMismatch("refused after writing")

    async def scenario(store: Store) -> None:
        outcomes = await asyncio.gather(
            store.write(put("a", b"1")),
            store.write(failing),
            store.write(put("b", b"2")),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], VersionMismatch)
        a, b = await store.get("a"), await store.get("b")
        assert a is not None and b is not None
        assert await store.get("bad") is None
        assert sorted([a.mod_revision, b.mod_revision]) == [1, 2]
        events = await store.events_after(0, "", True, 100)
        assert sorted(e.resource.key for e in events) == ["a", "b"]

    stores.run(scenario)


def test_an_unexpected_exception_rolls_back_and_reaches_the_caller_as_it_is(stores: Stores) -> None:
    def broken(txn: WriteTxn) -> None:
        put_in(txn, "k", b"x")
        raise KeyError("a bug in a body")

    async def scenario(store: Store) -> None:
        with pytest.raises(KeyError, match="a bug in a body"):
            await store.write(broken)
        assert await store.get("k") is None
        assert await store.current_revision() == 0

    stores.run(scenario)


def test_commits_are_published_to_listeners_in_commit_order(stores: Stores) -> None:
    """The changes of every commit (and what its body notified) reach every listener."""

    async def scenario(store: Store) -> None:
        heard = Heard(store)
        await store.write(put("a", b"1"))

        def two_keys(txn: WriteTxn) -> None:
            put_in(txn, "b", b"2")
            put_in(txn, "c", b"3")

        await store.write(two_keys)
        await store.write(delete("a"))
        await heard.through(3)
        assert [(n.type, n.resource.key, n.revision) for n in heard.changes()] == [
            (EventType.PUT, "a", 1),
            (EventType.PUT, "b", 2),
            (EventType.PUT, "c", 2),
            (EventType.DELETE, "a", 3),
        ]

    stores.run(scenario)


def test_a_closed_store_refuses_writes(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        await store.close()
        with pytest.raises(StoreUnavailable, match="the store is closed"):
            await store.write(put("k"))

    stores.run(scenario)
