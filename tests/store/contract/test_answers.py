"""Request answers (AIP-155): one per request key, read back as stored, gone with a rolled-back
body; and the store's clock and token floor, which every body reads."""

from __future__ import annotations

import asyncio

import pytest

from lockservice.errors import LockserviceError, VersionMismatch
from lockservice.model import Resource
from lockservice.store.base import Store, StoredAnswer, WriteTxn
from tests.store.contract.bodies import put
from tests.store.contract.conftest import Stores


def test_an_answer_is_stored_once_and_read_back(stores: Stores) -> None:
    def answer(txn: WriteTxn) -> None:
        txn.claim_request("r")
        txn.save_answer("r", "print", "the answer")

    async def scenario(store: Store) -> None:
        assert not await store.answered("r")
        assert await store.write(lambda txn: txn.get_answer("r")) is None
        await store.write(answer)
        assert await store.answered("r")
        stored = await store.write(lambda txn: txn.get_answer("r"))
        assert stored == StoredAnswer(fingerprint="print", answer="the answer")

    stores.run(scenario)


def test_a_second_answer_is_a_bug_and_the_first_stays(stores: Stores) -> None:
    """Never a domain error (which a client would be told), never retried as a conflict."""

    async def scenario(store: Store) -> None:
        await store.write(lambda txn: txn.save_answer("r", "print", "first"))
        with pytest.raises(Exception) as second:
            await store.write(lambda txn: txn.save_answer("r", "print", "second"))
        assert not isinstance(second.value, LockserviceError)
        stored = await store.write(lambda txn: txn.get_answer("r"))
        assert stored == StoredAnswer(fingerprint="print", answer="first")

    stores.run(scenario)


def test_an_answer_saved_by_a_failing_body_is_not_kept(stores: Stores) -> None:
    def answer_then_fail(txn: WriteTxn) -> None:
        txn.save_answer("r", "print", "never")
        raise VersionMismatch("abort")

    async def scenario(store: Store) -> None:
        with pytest.raises(VersionMismatch):
            await store.write(answer_then_fail)
        assert not await store.answered("r")
        await store.write(lambda txn: txn.save_answer("r", "print", "later"))  # not a second answer
        assert await store.answered("r")

    stores.run(scenario)


def test_a_bodys_clock_is_the_stores_and_never_goes_back(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        before = store.now_us()
        first = await store.write(lambda txn: txn.now_us)
        second = await store.write(lambda txn: txn.now_us)
        after = store.now_us()
        # PostgreSQL's store clock is the database's, known to the replica within a measured offset.
        assert before - 1_000_000 <= first <= second <= after + 1_000_000
        written = await store.write(put("k"))
        assert written.create_time_us >= second

    stores.run(scenario)


def test_a_fresh_store_issues_tokens_from_floor_zero(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        assert await store.write(lambda txn: txn.token_floor) == 0

    stores.run(scenario)


def test_durable_state_is_declared_by_the_stores_that_alone_write_their_storage(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        durable_state = store.capabilities.durable_state
        if stores.kind == "postgres":
            assert durable_state is None  # other replicas write too: only the database knows
            return
        assert durable_state is not None
        await store.write(put("k", b"1"))
        written = await store.write(put("k", b"2"))
        assert await durable_state("k") in [(written, written.mod_revision), None]
        assert await durable_state("never") in [(None, written.mod_revision), None]

        def delete(txn: WriteTxn) -> None:
            txn.next_revision()
            txn.delete("k")

        await store.write(delete)
        assert await durable_state("k") in [(None, written.mod_revision + 1), None]

    stores.run(scenario)


def test_durable_state_is_never_older_than_a_write_decided_before_it_was_asked(stores: Stores) -> None:
    """Asked while a write of the key is queued or committing, it answers the state that write
    leaves once durable, or the state before it: never one older than an acknowledged write."""

    async def scenario(store: Store) -> None:
        durable_state = store.capabilities.durable_state
        if durable_state is None:
            return
        first = await store.write(put("k", b"1"))
        pending = [asyncio.ensure_future(store.write(put("k", str(n).encode()))) for n in range(2, 10)]
        seen: list[tuple[Resource | None, int] | None] = []
        for _ in range(20):
            seen.append(await durable_state("k"))
            await asyncio.sleep(0)
        written = await asyncio.gather(*pending)
        states = [first, *written]
        for known in seen:
            if known is not None:
                state, revision = known
                assert state in states and state is not None and revision >= state.mod_revision
        assert await durable_state("k") in [(written[-1], written[-1].mod_revision), None]

    stores.run(scenario)
