"""A lock held by `Client.lock()` / `AsyncClient.lock()`: its fencing token, and whether it was lost."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from lockservice_client._proto import lock_pb2
from lockservice_client.errors import LockLost, StaleFence

__all__ = ["AsyncHeldLock", "HeldLock", "holding", "holding_async"]

OnLost = Callable[["HeldLock"], None]


class HeldLock:
    """The lock `name` held with fencing `token` under the lease `lease_id` (kept alive for you).

    Pass `fence` with every write the lock protects: the server refuses it (STALE_FENCE) once
    another holder has the lock. The lock is *lost* when its lease could not be kept alive, when
    the `with` block ends with a StaleFence refusing this lock's token, or when releasing it
    finds it no longer held; then `lost` is true, `check()` raises `LockLost`, `wait_lost()`
    returns, the `on_lost` callback has run (once, on the keeper's thread or task, or where the
    block ended), and leaving the `with` block raises `LockLost` unless the block raised
    something else.
    """

    def __init__(self, lock: lock_pb2.Lock, ttl_seconds: int, on_lost: OnLost | None = None) -> None:
        self.lock = lock
        self.name = lock.name
        self.token = lock.token
        self.lease_id = lock.lease_id
        self.holder = lock.holder
        self.ttl_seconds = ttl_seconds
        self.lost_cause: BaseException | None = None
        self._on_lost = on_lost
        self._lost = threading.Event()

    @property
    def fence(self) -> lock_pb2.Fence:
        return lock_pb2.Fence(lock_name=self.name, token=self.token)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def lost_error(self) -> LockLost:
        return LockLost(self.name, self.token, self.lost_cause)

    def check(self) -> None:
        """Raises LockLost if the lock was lost."""
        if self.lost:
            raise self.lost_error()

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Blocks until the lock is lost (True) or `timeout` seconds pass (False)."""
        return self._lost.wait(timeout)

    def fenced_out(self, error: BaseException) -> bool:
        """Whether `error` is a StaleFence refusing this lock's own token."""
        return (
            isinstance(error, StaleFence)
            and error.metadata.get("lock_name") == self.name
            and error.metadata.get("token") == str(self.token)
        )

    def mark_lost(self, cause: BaseException) -> None:
        """Records the loss and calls `on_lost`; later calls do nothing."""
        if self._lost.is_set():
            return
        self.lost_cause = cause
        self._lost.set()
        if self._on_lost is not None:
            self._on_lost(self)


@contextlib.contextmanager
def holding(
    held: HeldLock, stop_keeper: Callable[[], None], let_go: Callable[[], None]
) -> Iterator[HeldLock]:
    """The `with` block of a hold whose lease is being kept alive: yields `held`; a StaleFence
    refusing its token marks it lost; on exit stops the keeper, then lets go (release, revoke);
    after the block, raises LockLost if the hold was lost."""
    try:
        yield held
    except StaleFence as error:
        if held.fenced_out(error):
            held.mark_lost(error)
        raise
    finally:
        stop_keeper()
        let_go()
    held.check()


@contextlib.asynccontextmanager
async def holding_async(
    held: AsyncHeldLock, stop_keeper: Callable[[], Awaitable[None]], let_go: Callable[[], Awaitable[None]]
) -> AsyncIterator[AsyncHeldLock]:
    """`holding` for asyncio: the keeper is a task, letting go is awaited."""
    try:
        yield held
    except StaleFence as error:
        if held.fenced_out(error):
            held.mark_lost(error)
        raise
    finally:
        await stop_keeper()
        await let_go()
    held.check()


class AsyncHeldLock(HeldLock):
    """The asyncio flavour: `await wait_lost_async()` in the event loop of the client."""

    def __init__(self, lock: lock_pb2.Lock, ttl_seconds: int, on_lost: OnLost | None = None) -> None:
        super().__init__(lock, ttl_seconds, on_lost)
        self._lost_async = asyncio.Event()

    def mark_lost(self, cause: BaseException) -> None:
        self._lost_async.set()
        super().mark_lost(cause)

    async def wait_lost_async(self) -> None:
        await self._lost_async.wait()
