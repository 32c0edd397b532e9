"""Taking and handing over a lock: one grant per request (hand_over inside a real write body,
on SqliteStore with a real queue table; the rules are the core's, the same on every backend),
and take()'s next fencing token above the lock's last one and the store's floor."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from lockservice.codec import decode_lock_view, encode_lock_view
from lockservice.core.locks import hand_over, new_lock_state, take
from lockservice.model import Lease, LockGranted, LockState, LockView, LockWaiter
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


@dataclass
class _Txn:
    """The part of a WriteTxn that take() uses."""

    token_floor: int
    now_us: int = 1_000
    locks: dict[str, LockState] = field(default_factory=dict)

    def put_lock(self, state: LockState) -> None:
        self.locks[state.name] = state


LEASE = Lease(lease_id="l", holder="h", ttl_seconds=10, grant_time_us=0, expire_time_us=10_000_000)


def _token(floor: int, last: int) -> int:
    txn = _Txn(token_floor=floor)
    state = replace(new_lock_state("n"), token=last)
    held = take(cast(WriteTxn, cast(Any, txn)), state, LEASE, "h", 0, "g")
    assert txn.locks["n"] == held
    return held.token


def test_the_next_token_is_above_the_last_and_above_the_floor() -> None:
    assert _token(floor=0, last=0) == 1
    assert _token(floor=0, last=41) == 42
    assert _token(floor=1_000_000, last=0) == 1_000_001  # a name the restored backup never saw
    assert _token(floor=1_000_000, last=3) == 1_000_001  # a name it did see
    assert _token(floor=1_000_000, last=1_000_005) == 1_000_006  # tokens issued since the restore
