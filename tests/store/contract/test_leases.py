"""Lease rows: stored, replaced, deleted, counted, found past their deadline, and what hangs on
them (held locks, resources)."""

from __future__ import annotations

from lockservice.store.base import Store, WriteTxn
from tests.store.contract.bodies import lease, lock, put_in
from tests.store.contract.conftest import Stores


def test_a_lease_is_stored_replaced_and_deleted(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        await store.write(lambda txn: txn.put_lease(lease("l", 5_000_000, owner_lock="m")))
        assert await store.get_lease("l") == lease("l", 5_000_000, owner_lock="m")
        assert await store.write(lambda txn: txn.get_lease("l")) == lease("l", 5_000_000, owner_lock="m")
        await store.write(lambda txn: txn.put_lease(lease("l", 9_000_000)))  # a refresh
        assert await store.get_lease("l") == lease("l", 9_000_000)
        await store.write(lambda txn: txn.delete_lease("l"))
        assert await store.get_lease("l") is None
        await store.write(lambda txn: txn.delete_lease("never"))  # no error
        assert await store.write(lambda txn: txn.lease_rows()) == 0

    stores.run(scenario)


def test_leases_are_counted_live_or_past_their_deadline(stores: Stores) -> None:
    def grant(txn: WriteTxn) -> None:
        for index, expire in enumerate([300, 100, 200, 400, 500]):
            txn.put_lease(lease(f"l{index}", expire))

    async def scenario(store: Store) -> None:
        await store.write(grant)

        def counts(txn: WriteTxn) -> tuple[int, int, int, list[str], list[str]]:
            return (
                txn.lease_rows(),
                txn.live_lease_count(200),
                txn.live_lease_count(0),
                [x.lease_id for x in txn.expired_leases(300, 100)],
                [x.lease_id for x in txn.expired_leases(1000, 2)],
            )

        # Live: a deadline after `now`; expired: at or before it, earliest first.
        assert await store.write(counts) == (5, 3, 5, ["l1", "l2", "l0"], ["l1", "l2"])

    stores.run(scenario)


def test_what_hangs_on_a_lease_is_found_by_its_id(stores: Stores) -> None:
    def attach(txn: WriteTxn) -> None:
        txn.put_lease(lease("l"))
        txn.put_lease(lease("other"))
        txn.put_lock(lock("z-lock", lease_id="l"))
        txn.put_lock(lock("a-lock", lease_id="l"))
        txn.put_lock(lock("other-lock", lease_id="other"))
        txn.put_lock(lock("freed-lock"))  # once held under l, now free
        put_in(txn, "k2", b"v", lease_id="l")
        put_in(txn, "k1", b"v", lease_id="l")
        put_in(txn, "k3", b"v")

    async def scenario(store: Store) -> None:
        await store.write(attach)
        assert await store.lease_lock_names("l") == ["a-lock", "z-lock"]
        assert await store.lease_resource_keys("l") == ["k1", "k2"]
        inside = await store.write(lambda txn: (txn.lease_lock_names("l"), txn.lease_resource_keys("l")))
        assert inside == (["a-lock", "z-lock"], ["k1", "k2"])
        assert await store.lease_lock_names("none") == []
        assert await store.lease_resource_keys("other") == []

    stores.run(scenario)


def test_the_next_deadline_is_the_earliest_lease_expiry(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        assert await store.next_deadline() is None
        await store.write(lambda txn: txn.put_lease(lease("late", 9_000)))
        await store.write(lambda txn: txn.put_lease(lease("early", 7_000)))
        assert await store.next_deadline() == 7_000
        await store.write(lambda txn: txn.delete_lease("early"))
        assert await store.next_deadline() == 9_000

    stores.run(scenario)
