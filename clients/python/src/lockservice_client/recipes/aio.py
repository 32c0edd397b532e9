"""The recipes for `AsyncClient`: `AsyncElection`, `AsyncSemaphore`, `AsyncReadWriteLock`.

Each works as its synchronous twin (see `election`, `semaphore`, `rwlock`) and is used with
`async with` (`observe()` with `async for`); the lease of a hold is kept alive by a task in the
client's event loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from lockservice_client._proto import lock_pb2
from lockservice_client.aio import AsyncClient
from lockservice_client.errors import LeaseNotFound, LockHeld, LockNotFound, LockserviceError
from lockservice_client.held_lock import AsyncHeldLock, OnLost, holding_async
from lockservice_client.keepalive import AsyncLeaseKeeper, LeaseSchedule
from lockservice_client.recipes._holding import WAIT_CHUNK_SECONDS, Deadline, LossRelay, log
from lockservice_client.recipes.election import Leader, Office, decode_leader, encode_leader
from lockservice_client.recipes.semaphore import Slots

__all__ = ["AsyncElection", "AsyncReadWriteLock", "AsyncSemaphore"]


async def _acquire_waiting(
    client: AsyncClient,
    name: str,
    lease_id: str,
    holder: str,
    deadline: Deadline,
    cap: float = WAIT_CHUNK_SECONDS,
) -> lock_pb2.Lock:
    while True:
        try:
            return await client.acquire_lock(
                name, lease_id=lease_id, holder=holder, wait=deadline.remaining(cap)
            )
        except LockHeld:
            if deadline.passed or cap < WAIT_CHUNK_SECONDS:
                raise


@contextlib.asynccontextmanager
async def _hold_under_lease(
    client: AsyncClient,
    ttl_seconds: int,
    holder: str,
    on_lost: OnLost | None,
    take: Callable[[str], Awaitable[lock_pb2.Lock]],
) -> AsyncIterator[AsyncHeldLock]:
    sent_at = time.monotonic()
    lease_id = (await client.grant_lease(ttl_seconds, holder=holder)).lease_id
    relay = LossRelay()
    keeper = AsyncLeaseKeeper(
        lambda timeout: client.refresh_lease(lease_id, timeout=timeout),
        LeaseSchedule(ttl_seconds, sent_at),
        relay.lost,
    )
    keeper.start()
    try:
        held = AsyncHeldLock(await take(lease_id), ttl_seconds, on_lost)
    except BaseException:
        await keeper.stop()
        await _revoke(client, lease_id, None)
        raise
    relay.forward_to(held)
    async with holding_async(held, keeper.stop, lambda: _revoke(client, lease_id, held)):
        yield held


async def _revoke(client: AsyncClient, lease_id: str, held: AsyncHeldLock | None) -> None:
    try:
        await client.revoke_lease(lease_id)
    except LeaseNotFound as error:
        if held is not None:
            held.mark_lost(error)
    except LockserviceError as error:
        log.warning("could not revoke lease %s: %s", lease_id, error)


class AsyncElection(Office[AsyncClient]):
    """`Election` for asyncio."""

    @contextlib.asynccontextmanager
    async def campaign(
        self, value: str, *, wait: float | None = None, on_lost: OnLost | None = None
    ) -> AsyncIterator[AsyncHeldLock]:
        async def take_office(lease_id: str) -> lock_pb2.Lock:
            office = await _acquire_waiting(self.client, self.name, lease_id, value, Deadline(wait))
            await self.client.put(
                self.leader_key,
                encode_leader(Leader(value=value, token=office.token, lease_id=lease_id)),
                content_type="application/json",
                lease_id=lease_id,
                fence=self.fence(office),
            )
            return office

        async with _hold_under_lease(self.client, self.ttl_seconds, value, on_lost, take_office) as held:
            yield held

    async def leader(self) -> Leader | None:
        try:
            office = await self.client.get_lock(self.name)
        except LockNotFound:
            return None
        return Leader(office.holder, office.token, office.lease_id) if office.held else None

    async def observe(self) -> AsyncGenerator[Leader | None, None]:
        listing = self.client.list(self.leader_key, with_values=True)
        current = None
        async for found in listing:
            if found.key == self.leader_key:
                current = decode_leader(found)
        yield current
        async with self.client.watch(self.leader_key, start_revision=listing.revision + 1) as watch:
            async for event in watch:
                proclaimed = decode_leader(event.resource) if event.type == event.PUT else None
                if proclaimed != current:
                    current = proclaimed
                    yield current


class AsyncSemaphore(Slots[AsyncClient]):
    """`Semaphore` for asyncio."""

    @contextlib.asynccontextmanager
    async def acquire(
        self, *, wait: float | None = None, holder: str | None = None, on_lost: OnLost | None = None
    ) -> AsyncIterator[AsyncHeldLock]:
        who = holder or self.client.holder

        async def take(lease_id: str) -> lock_pb2.Lock:
            return await self.take_slot(lease_id, who, Deadline(wait))

        async with _hold_under_lease(self.client, self.ttl_seconds, who, on_lost, take) as held:
            yield held

    async def take_slot(self, lease_id: str, holder: str, deadline: Deadline) -> lock_pb2.Lock:
        while True:
            for index in self.slot_order():
                try:
                    return await self.client.acquire_lock(self.slot(index), lease_id=lease_id, holder=holder)
                except LockHeld:
                    pass
            try:
                return await _acquire_waiting(
                    self.client,
                    self.any_slot(),
                    lease_id,
                    holder,
                    deadline,
                    self.probe_seconds,
                )
            except LockHeld:
                if deadline.passed:
                    raise


class AsyncReadWriteLock:
    """`ReadWriteLock` for asyncio."""

    def __init__(
        self, client: AsyncClient, name: str, *, max_readers: int = 16, ttl_seconds: int = 10
    ) -> None:
        self.client = client
        self.name = name
        self.readers = AsyncSemaphore(client, f"{name}/readers", max_readers, ttl_seconds=ttl_seconds)
        self.ttl_seconds = ttl_seconds

    def read(
        self, *, wait: float | None = None, holder: str | None = None, on_lost: OnLost | None = None
    ) -> contextlib.AbstractAsyncContextManager[AsyncHeldLock]:
        return self.readers.acquire(wait=wait, holder=holder, on_lost=on_lost)

    @contextlib.asynccontextmanager
    async def write(
        self, *, wait: float | None = None, holder: str | None = None, on_lost: OnLost | None = None
    ) -> AsyncIterator[AsyncHeldLock]:
        who = holder or self.client.holder

        async def take_every_slot(lease_id: str) -> lock_pb2.Lock:
            deadline = Deadline(wait)
            slots = [
                await _acquire_waiting(self.client, self.readers.slot(index), lease_id, who, deadline)
                for index in range(self.readers.limit)
            ]
            return slots[0]

        async with _hold_under_lease(self.client, self.ttl_seconds, who, on_lost, take_every_slot) as held:
            yield held
