"""hand_over inside a real write body: first come, first served, one grant per request.

On SqliteStore (an in-process store with a real queue table); the rules are the core's, the
same on every backend.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from lockservice.codec import decode_lock_view, encode_lock_view
from lockservice.core.handoff import hand_over, new_lock_state
from lockservice.model import LockGranted, LockState, LockView, LockWaiter
from lockservice.store.base import Notice, WriteTxn
from lockservice.store.sqlite import SqliteStore


def _waiter(waiter_id: str, request_key: str = "", fingerprint: str = "") -> LockWaiter:
    return LockWaiter(
        waiter_id=waiter_id,
        name="l",
        seq=0,
        holder=waiter_id,
        lease_id="",
        ttl_seconds=30,
        lock_delay_us=0,
        request_id=request_key,
        fingerprint=fingerprint,
        deadline_us=0,
    )


def test_a_waiter_whose_request_was_answered_is_never_granted_again(tmp_path: Path) -> None:
    """A second waiter for one request (left by a replica of an older version) gets the first
    answer, and the lock goes on to the next waiter: no second grant, no second answer."""
    first = LockView(state=new_lock_state("l"), expire_time_us=0, waiters=0)
    notices: list[Notice] = []

    def queue(txn: WriteTxn) -> None:
        txn.put_lock(new_lock_state("l"))
        txn.save_answer("x", "print", encode_lock_view(first))
        txn.add_waiter(_waiter("stale", "x", "print"))
        txn.add_waiter(_waiter("other-payload", "x", "another print"))
        txn.add_waiter(_waiter("next"))

    def release(txn: WriteTxn) -> LockState:
        state = txn.get_lock("l")
        assert state is not None
        return hand_over(txn, state)

    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        store.subscribe(notices.extend)
        try:
            await store.write(queue)
            held = await store.write(release)
            assert (held.held, held.holder, held.token) == (True, "next", 1)
            assert await store.waiter_count("l") == 0
            answer = await store.write(lambda txn: txn.get_answer("x"))
            assert answer is not None and decode_lock_view(answer.answer) == first
        finally:
            await store.close()

    asyncio.run(scenario())
    grants = [n for n in notices if isinstance(n, LockGranted)]
    assert [(g.waiter_id, g.lock.state.holder) for g in grants] == [("stale", ""), ("next", "next")]
    assert grants[0].lock == first
