"""Leader election, as etcd's `concurrency.Election`: campaign, observe the leader, resign.

The leadership is the lock `NAME`, held under a lease of the campaigner's own and queued for
first come, first served; its holder is the campaigner's value and its fencing token the
leader's, strictly increasing from one leader to the next. The leader proclaims itself in the
key `NAME/leader` (JSON `{"value", "token", "lease_id"}`), written fenced with its token and
attached to its lease, so the key is deleted when the leadership ends, however it ends:
observers watch that key. Writes the leader makes on behalf of its office should carry
`held.fence`: the store refuses them once another leader is in office.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from lockservice_client._proto import lock_pb2, resource_pb2
from lockservice_client.client import Client
from lockservice_client.errors import LockNotFound
from lockservice_client.held_lock import HeldLock, OnLost
from lockservice_client.recipes._holding import Deadline, acquire_waiting, hold_under_lease

__all__ = ["Election", "Leader", "Office", "decode_leader", "encode_leader"]


@dataclass(frozen=True)
class Leader:
    """Who leads (`value`, as given to `campaign`), with the fencing token of its term."""

    value: str
    token: int
    lease_id: str


ClientT = TypeVar("ClientT")


class Office(Generic[ClientT]):
    """The office of the election `name` and the key its leader proclaims itself in, through
    `client` (sync or asyncio); each campaigner's lease lives `ttl_seconds` unless kept alive."""

    def __init__(self, client: ClientT, name: str, *, ttl_seconds: int = 10) -> None:
        self.client = client
        self.name = name
        self.leader_key = f"{name}/leader"
        self.ttl_seconds = ttl_seconds

    def fence(self, office: lock_pb2.Lock) -> lock_pb2.Fence:
        return lock_pb2.Fence(lock_name=self.name, token=office.token)


class Election(Office[Client]):
    """Leader election `name` (see the module's docs)."""

    @contextlib.contextmanager
    def campaign(
        self, value: str, *, wait: float | None = None, on_lost: OnLost | None = None
    ) -> Iterator[HeldLock]:
        """Leads for the `with` block: queues (up to `wait` seconds; None: until elected) for the
        office, proclaims `value`, yields the leadership (its `token` and `fence`) and resigns on
        exit. Raises LockHeld when `wait` passes first. The leadership is lost as a `lock()` is
        (see `HeldLock`): then `on_lost` runs and leaving the block raises LockLost."""

        def take_office(lease_id: str) -> lock_pb2.Lock:
            office = acquire_waiting(self.client, self.name, lease_id, value, Deadline(wait))
            proclamation = Leader(value=value, token=office.token, lease_id=lease_id)
            self.client.put(
                self.leader_key,
                encode_leader(proclamation),
                content_type="application/json",
                lease_id=lease_id,
                fence=self.fence(office),
            )
            return office

        with hold_under_lease(self.client, self.ttl_seconds, value, on_lost, take_office) as held:
            yield held

    def leader(self) -> Leader | None:
        """The leader now (from the office itself), or None when the office is empty."""
        try:
            office = self.client.get_lock(self.name)
        except LockNotFound:
            return None
        return Leader(office.holder, office.token, office.lease_id) if office.held else None

    def observe(self) -> Generator[Leader | None, None, None]:
        """The proclaimed leader now, then each change of leader (None: no leader), in order,
        without a gap: read the key with its revision, then watch from the next one (the watch
        resumes by itself after a disconnect). Runs until closed."""
        listing = self.client.list(self.leader_key, with_values=True)
        current = next((decode_leader(found) for found in listing if found.key == self.leader_key), None)
        yield current
        with self.client.watch(self.leader_key, start_revision=listing.revision + 1) as watch:
            for event in watch:
                proclaimed = decode_leader(event.resource) if event.type == event.PUT else None
                if proclaimed != current:
                    current = proclaimed
                    yield current


def encode_leader(leader: Leader) -> bytes:
    return json.dumps({"value": leader.value, "token": leader.token, "lease_id": leader.lease_id}).encode()


def decode_leader(resource: resource_pb2.Resource) -> Leader:
    fields = json.loads(resource.value)
    return Leader(value=str(fields["value"]), token=int(fields["token"]), lease_id=str(fields["lease_id"]))
