"""A counting semaphore: at most `limit` holders at once, each with a fencing token.

The semaphore `NAME` is `limit` locks, `NAME/slot-0` ... `NAME/slot-{limit-1}`; a holder holds
one slot, under a lease of its own, so the server itself keeps the count: two holders never
share a slot. Acquiring tries every slot once (from a random one), then queues on one slot for
up to `probe_seconds` (woken the moment it is released) and tries them all again, until `wait`
passes. The hold's `fence` names its slot: the store refuses a write fenced with it once the
slot has passed to another holder.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Generic, TypeVar

from lockservice_client._proto import lock_pb2
from lockservice_client.client import Client
from lockservice_client.errors import LockHeld
from lockservice_client.held_lock import HeldLock, OnLost
from lockservice_client.recipes._holding import Deadline, acquire_waiting, hold_under_lease

__all__ = ["PROBE_SECONDS", "Semaphore", "Slots"]

PROBE_SECONDS = 0.5


ClientT = TypeVar("ClientT")


class Slots(Generic[ClientT]):
    """The `limit` slot locks of the semaphore `name`, through `client` (sync or asyncio)."""

    def __init__(
        self,
        client: ClientT,
        name: str,
        limit: int,
        *,
        ttl_seconds: int = 10,
        probe_seconds: float = PROBE_SECONDS,
    ) -> None:
        if limit < 1:
            raise ValueError("a semaphore's limit must be at least 1")
        self.client = client
        self.name = name
        self.limit = limit
        self.ttl_seconds = ttl_seconds
        self.probe_seconds = probe_seconds

    def slot(self, index: int) -> str:
        """The lock name of slot `index`."""
        return f"{self.name}/slot-{index}"

    def slot_order(self) -> list[int]:
        """Every slot once, from a random one (so that holders spread over the slots)."""
        first = random.randrange(self.limit)
        return [(first + step) % self.limit for step in range(self.limit)]

    def any_slot(self) -> str:
        return self.slot(random.randrange(self.limit))


class Semaphore(Slots[Client]):
    """At most `limit` holders of `name` at once. Every user of `name` must give the same `limit`."""

    @contextlib.contextmanager
    def acquire(
        self, *, wait: float | None = None, holder: str | None = None, on_lost: OnLost | None = None
    ) -> Iterator[HeldLock]:
        """Holds one slot for the `with` block (its lease kept alive), waiting up to `wait`
        seconds (None: until one frees; 0: try once). Raises LockHeld when none frees in time.
        Losing the slot is reported as `Client.lock` reports a lost lock."""
        who = holder or self.client.holder
        with hold_under_lease(
            self.client,
            self.ttl_seconds,
            who,
            on_lost,
            lambda lease_id: self.take_slot(lease_id, who, Deadline(wait)),
        ) as held:
            yield held

    def take_slot(self, lease_id: str, holder: str, deadline: Deadline) -> lock_pb2.Lock:
        """Takes a free slot under `lease_id`, by `deadline`; raises LockHeld otherwise."""
        while True:
            for index in self.slot_order():
                try:
                    return self.client.acquire_lock(self.slot(index), lease_id=lease_id, holder=holder)
                except LockHeld:
                    pass
            try:
                return acquire_waiting(
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
