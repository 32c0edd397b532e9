"""A read-write lock: many readers, or one writer, never both.

The lock `NAME` is a semaphore of `max_readers` slots (`NAME/readers/slot-N`): a reader holds
one slot; a writer holds them all, taking them in order (queueing on each), so writers exclude
each other at slot 0 and never deadlock, and no reader holds a slot while a writer holds all.
Each hold is under a lease of its own, released at once by revoking it. A reader's `fence`
names its slot; a writer's names slot 0, which no other holder can have while it writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from lockservice_client._proto import lock_pb2
from lockservice_client.client import Client
from lockservice_client.held_lock import HeldLock, OnLost
from lockservice_client.recipes._holding import Deadline, acquire_waiting, hold_under_lease
from lockservice_client.recipes.semaphore import Semaphore

__all__ = ["ReadWriteLock"]


class ReadWriteLock:
    """At most `max_readers` readers at once, or one writer. Every user of `name` must give the
    same `max_readers`."""

    def __init__(self, client: Client, name: str, *, max_readers: int = 16, ttl_seconds: int = 10) -> None:
        self.client = client
        self.name = name
        self.readers = Semaphore(client, f"{name}/readers", max_readers, ttl_seconds=ttl_seconds)
        self.ttl_seconds = ttl_seconds

    def read(
        self, *, wait: float | None = None, holder: str | None = None, on_lost: OnLost | None = None
    ) -> contextlib.AbstractContextManager[HeldLock]:
        """Reads for the `with` block, alongside other readers; waits up to `wait` seconds (None:
        as long as it takes) while a writer holds or is taking the lock. Raises LockHeld."""
        return self.readers.acquire(wait=wait, holder=holder, on_lost=on_lost)

    @contextlib.contextmanager
    def write(
        self, *, wait: float | None = None, holder: str | None = None, on_lost: OnLost | None = None
    ) -> Iterator[HeldLock]:
        """Writes for the `with` block, alone: waits up to `wait` seconds (None: as long as it
        takes) for the readers and any writer before it to leave. Raises LockHeld."""
        who = holder or self.client.holder

        def take_every_slot(lease_id: str) -> lock_pb2.Lock:
            deadline = Deadline(wait)
            slots = [
                acquire_waiting(self.client, self.readers.slot(index), lease_id, who, deadline)
                for index in range(self.readers.limit)
            ]
            return slots[0]

        with hold_under_lease(self.client, self.ttl_seconds, who, on_lost, take_every_slot) as held:
            yield held
