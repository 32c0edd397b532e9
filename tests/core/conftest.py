"""The core's rules over a MemoryStore on a ManualClock: no database, no process, no sleep.

`core.run(scenario)` runs an `async def scenario() -> None` on a fresh event loop. Time moves
only when a test calls `core.clock.advance(...)`; `core.expire()` then does what the expiry
task does when it wakes (`lockservice.core.expiry.Expirer`), and returns once it is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from lockservice.core.expiry import Expirer
from lockservice.core.leases import Leases
from lockservice.core.limits import Limits
from lockservice.core.locks import Locks
from lockservice.core.resources import Resources
from lockservice.core.watch import Watches
from lockservice.model import ChangeEvent, LockWaiter
from lockservice.store.base import Notice
from lockservice.store.memory import ManualClock, MemoryStore

# Turns of the event loop a test may wait for something the core does without being awaited
# (a queued waiter's write, a hand-over reaching a waiting call): far more than it ever takes.
_TURNS = 1000


@dataclass
class Core:
    clock: ManualClock
    store: MemoryStore
    limits: Limits
    locks: Locks
    leases: Leases
    resources: Resources
    watches: Watches
    notices: list[Notice] = field(default_factory=list)

    def run(self, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
        asyncio.run(scenario())

    def changes(self) -> list[ChangeEvent]:
        """Every change committed so far, in order."""
        return [notice for notice in self.notices if isinstance(notice, ChangeEvent)]

    async def expire(self) -> None:
        """Runs the expiry task until it has ended everything due at the clock's time."""
        expirer = Expirer(self.store)
        expirer.start()
        try:
            for _ in range(_TURNS):
                deadline = await self.store.next_deadline()
                if deadline is None or deadline > self.clock.now_us():
                    return
                await asyncio.sleep(0)
            raise AssertionError(f"still due after {_TURNS} turns of the event loop")
        finally:
            await expirer.stop()


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Lets the event loop run until `await condition()` holds; fails if it never does."""
    for _ in range(_TURNS):
        if await condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"still not true after {_TURNS} turns of the event loop")


async def queue(core: Core, name: str) -> list[LockWaiter]:
    """The lock's queue as the store holds it, first come first."""
    return await core.store.write(lambda txn: txn.lock_waiters(name))


def make_core(
    limits: Limits | None = None,
    *,
    watch_history_revisions: int = 10_000,
    request_id_retention_seconds: int = 3600,
) -> Core:
    """The core over a fresh MemoryStore on a ManualClock, with `limits` (the defaults if None)."""
    clock = ManualClock()
    store = MemoryStore(
        clock=clock,
        watch_history_revisions=watch_history_revisions,
        request_id_retention_seconds=request_id_retention_seconds,
    )
    limits = limits or Limits()
    core = Core(
        clock=clock,
        store=store,
        limits=limits,
        locks=Locks(store, limits),
        leases=Leases(store, limits),
        resources=Resources(store, limits),
        watches=Watches(store, limits),
    )
    store.subscribe(core.notices.extend)
    return core


@pytest.fixture
def core() -> Core:
    return make_core()
