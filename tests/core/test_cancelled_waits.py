"""A waiting AcquireLock whose caller goes away leaves the queue, whenever the cancellation
lands: also in the moment between the queueing write's commit and the wait that follows it (a
loaded server resumes the call late; the caller, seeing itself queued, may cancel first)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.locks import Locks
from lockservice.deadlines import begin_call, store_deadline
from lockservice.errors import StoreUnavailable
from lockservice.store.sqlite import SqliteStore


class _HeldAfterCommit:
    """Passes everything to the store; `write` holds the call after the commit until `resume` is
    set: the call stands where a loaded event loop leaves it, committed but not yet resumed."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self.hold = False
        self.resume = asyncio.Event()

    async def write(self, body: Callable[[Any], Any]) -> Any:
        result = await self._store.write(body)
        if self.hold:
            await self.resume.wait()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_waiter_cancelled_right_after_it_was_queued_leaves_the_queue(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        try:
            held_store = _HeldAfterCommit(store)
            locks = Locks(held_store, Limits())
            owner = await locks.acquire(rq.AcquireLock(name="l", ttl_seconds=30, holder="owner"))
            held_store.hold = True
            waiting = asyncio.create_task(
                locks.acquire(
                    rq.AcquireLock(name="l", ttl_seconds=30, holder="gone", wait_timeout_seconds=30)
                )
            )
            for _ in range(1000):  # until the waiter's row is committed
                if await store.waiter_count("l") == 1:
                    break
                await asyncio.sleep(0.01)
            assert await store.waiter_count("l") == 1
            waiting.cancel()
            held_store.hold = False
            held_store.resume.set()
            await asyncio.gather(waiting, return_exceptions=True)
            for _ in range(1000):  # until the clean-up's write has committed
                if await store.waiter_count("l") == 0:
                    break
                await asyncio.sleep(0.01)
            assert await store.waiter_count("l") == 0
            # The lock stays with its owner; released, it is free, not handed to the gone caller.
            released = await locks.release(rq.ReleaseLock(name="l", token=owner.state.token))
            assert (released.state.held, released.state.token) == (False, owner.state.token)
        finally:
            await store.close()

    asyncio.run(scenario())


class _DeadlineBound:
    """Passes everything to the store; `write` refuses, as PostgreSQL's store does when its
    threads cannot start the body in time, once the call's deadline leaves no time."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def write(self, body: Callable[[Any], Any]) -> Any:
        if store_deadline() <= time.monotonic():
            raise StoreUnavailable("no time left within the call's deadline")
        return await self._store.write(body)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_waiter_whose_callers_deadline_passed_leaves_the_queue(tmp_path: Path) -> None:
    """gRPC cancels a call at its deadline: the clean-up that takes the waiter out of the queue
    is not the call's, and is not bound by that deadline."""

    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        try:
            locks = Locks(_DeadlineBound(store), Limits())
            owner = await locks.acquire(rq.AcquireLock(name="l", ttl_seconds=30, holder="owner"))

            async def call_with_deadline() -> None:
                begin_call(0.5)
                await locks.acquire(
                    rq.AcquireLock(name="l", ttl_seconds=30, holder="gone", wait_timeout_seconds=30)
                )

            waiting = asyncio.create_task(call_with_deadline())
            for _ in range(1000):  # until the waiter's row is committed
                if await store.waiter_count("l") == 1:
                    break
                await asyncio.sleep(0.01)
            assert await store.waiter_count("l") == 1
            await asyncio.sleep(0.6)  # past the call's deadline: now gRPC cancels it
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            for _ in range(1000):  # until the clean-up's write has committed
                if await store.waiter_count("l") == 0:
                    break
                await asyncio.sleep(0.01)
            assert await store.waiter_count("l") == 0
            released = await locks.release(rq.ReleaseLock(name="l", token=owner.state.token))
            assert (released.state.held, released.state.token) == (False, owner.state.token)
        finally:
            await store.close()

    asyncio.run(scenario())
