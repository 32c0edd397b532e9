"""Lock rows and their queues: tokens kept across releases, first come first served, a waiter
taken over in its place, waiters found by lease and by request, locks whose delay has ended."""

from __future__ import annotations

from dataclasses import replace

from lockservice.model import LockWaiter
from lockservice.store.base import Store, WriteTxn
from tests.store.contract.bodies import FAR_FUTURE_US, lease, lock, waiter
from tests.store.contract.conftest import Stores


def test_a_lock_row_is_stored_and_replaced(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        assert await store.get_lock("m") is None
        await store.write(lambda txn: txn.put_lock(lock("m", lease_id="l", token=4)))
        assert await store.get_lock("m") == lock("m", lease_id="l", token=4)
        freed = replace(lock("m", token=4), available_time_us=123)
        await store.write(lambda txn: txn.put_lock(freed))
        assert await store.write(lambda txn: txn.get_lock("m")) == freed

    stores.run(scenario)


def test_waiters_queue_first_come_first_served(stores: Stores) -> None:
    def queue(txn: WriteTxn) -> list[LockWaiter]:
        return [txn.add_waiter(waiter(f"w{index}", "m")) for index in range(4)]

    async def scenario(store: Store) -> None:
        added = await store.write(queue)
        seqs = [w.seq for w in added]
        assert seqs == sorted(seqs) and len(set(seqs)) == 4
        assert added[0] == replace(waiter("w0", "m"), seq=seqs[0])
        await store.write(lambda txn: txn.add_waiter(waiter("other", "n")))

        def read(txn: WriteTxn) -> tuple[list[str], list[str], int, int]:
            return (
                [w.waiter_id for w in txn.lock_waiters("m")],
                [w.waiter_id for w in txn.lock_waiters("m", limit=2)],
                txn.count_waiters("m"),
                txn.count_waiters("none"),
            )

        assert await store.write(read) == (["w0", "w1", "w2", "w3"], ["w0", "w1"], 4, 0)
        assert await store.waiter_count("m") == 4
        assert await store.write(lambda txn: txn.remove_waiter("w1")) is True
        assert await store.write(lambda txn: txn.remove_waiter("w1")) is False
        assert [w.waiter_id for w in await store.write(lambda txn: txn.lock_waiters("m"))] == [
            "w0",
            "w2",
            "w3",
        ]
        assert await store.waiter_count("m") == 3

    stores.run(scenario)


def test_a_waiter_taken_over_keeps_its_place(stores: Stores) -> None:
    def queue(txn: WriteTxn) -> None:
        txn.add_waiter(waiter("first", "m"))
        txn.add_waiter(waiter("retried", "m", request_id="r"))
        txn.add_waiter(waiter("last", "m"))

    async def scenario(store: Store) -> None:
        await store.write(queue)
        found = await store.write(lambda txn: txn.queued_request("r"))
        assert found is not None and found.waiter_id == "retried"
        assert await store.write(lambda txn: txn.queued_request("unknown")) is None
        await store.write(lambda txn: txn.take_over_waiter("retried", "retry", 42))
        queued = await store.write(lambda txn: txn.lock_waiters("m"))
        assert [(w.waiter_id, w.deadline_us) for w in queued] == [
            ("first", FAR_FUTURE_US),
            ("retry", 42),
            ("last", FAR_FUTURE_US),
        ]
        assert queued[1].seq == found.seq and queued[1].request_id == "r"

    stores.run(scenario)


def test_waiters_are_found_under_their_lease_and_leaseless_ones_counted(stores: Stores) -> None:
    def queue(txn: WriteTxn) -> None:
        txn.add_waiter(waiter("a", "m", lease_id="l"))
        txn.add_waiter(waiter("b", "n"))
        txn.add_waiter(waiter("c", "n", lease_id="l"))
        txn.add_waiter(waiter("d", "m"))

    async def scenario(store: Store) -> None:
        await store.write(queue)
        under = await store.write(lambda txn: [w.waiter_id for w in txn.waiters_under_lease("l")])
        assert under == ["a", "c"]
        assert await store.write(lambda txn: txn.count_leaseless_waiters()) == 2

    stores.run(scenario)


def test_free_locks_past_their_delay_with_waiters_are_found_and_set_the_next_deadline(stores: Stores) -> None:
    def setup(txn: WriteTxn) -> None:
        txn.put_lease(lease("l", 50_000))
        txn.put_lock(lock("due-b", available_time_us=1_000))
        txn.put_lock(lock("due-a", available_time_us=2_000))
        txn.put_lock(lock("later", available_time_us=5_000))
        txn.put_lock(lock("no-waiters", available_time_us=500))
        txn.put_lock(lock("held", lease_id="l"))
        for name in ("due-b", "due-a", "later", "held"):
            txn.add_waiter(waiter(f"w-{name}", name))

    async def scenario(store: Store) -> None:
        await store.write(setup)
        due = await store.write(lambda txn: [s.name for s in txn.delayed_locks_with_waiters(2_000, 10)])
        assert due == ["due-a", "due-b"]
        assert await store.write(lambda txn: [s.name for s in txn.delayed_locks_with_waiters(2_000, 1)]) == [
            "due-a"
        ]
        # The earliest lock-delay end that waiters wait out, before the lease's expiry.
        assert await store.next_deadline() == 1_000

    stores.run(scenario)
