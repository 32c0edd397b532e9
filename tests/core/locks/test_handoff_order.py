"""The hand-over's path on SqliteStore: the next holder's grant is answered before the releasing
call's own answer, which is not on that path, and a wait still ends at its timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.locks import Locks
from lockservice.errors import LockHeld
from lockservice.store.sqlite import SqliteStore

# Polls, 1 ms apart, for a queued waiter's write to commit: far more than it takes.
_TURNS = 1000


async def _queued(store: SqliteStore, name: str, count: int) -> None:
    for _ in range(_TURNS):
        if await store.waiter_count(name) == count:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{name} never had {count} waiter(s)")


def test_the_next_holder_is_answered_before_the_releasing_call(tmp_path: Path) -> None:
    finished: list[str] = []

    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        locks = Locks(store, Limits())
        try:
            held = await locks.acquire(rq.AcquireLock(name="l", ttl_seconds=30, holder="a"))
            waiting = asyncio.ensure_future(
                locks.acquire(rq.AcquireLock(name="l", ttl_seconds=30, holder="b", wait_timeout_seconds=30))
            )
            await _queued(store, "l", 1)
            waiting.add_done_callback(lambda _: finished.append("granted"))
            releasing = asyncio.ensure_future(locks.release(rq.ReleaseLock(name="l", token=held.state.token)))
            releasing.add_done_callback(lambda _: finished.append("released"))
            granted, released = await asyncio.gather(waiting, releasing)
            assert (granted.state.holder, granted.state.token) == ("b", held.state.token + 1)
            assert (released.state.holder, released.state.token) == ("b", held.state.token + 1)
        finally:
            locks.close()
            await store.close()

    asyncio.run(scenario())
    assert finished == ["granted", "released"]


def test_a_wait_ends_at_its_timeout_with_the_lock_still_held(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        locks = Locks(store, Limits())
        try:
            held = await locks.acquire(rq.AcquireLock(name="l", ttl_seconds=30, holder="a"))
            with pytest.raises(LockHeld) as refused:
                await locks.acquire(
                    rq.AcquireLock(name="l", ttl_seconds=30, holder="b", wait_timeout_seconds=0.05)
                )
            assert refused.value.reason == "LOCK_HELD"
            assert str(refused.value) == "lock l is held by a (token 1)"
            assert await store.waiter_count("l") == 0
            state = await store.get_lock("l")
            assert state is not None and (state.holder, state.token) == ("a", held.state.token)
        finally:
            locks.close()
            await store.close()

    asyncio.run(scenario())
