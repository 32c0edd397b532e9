"""What every recipe does around its locks: one lease per hold, kept alive in the background,
the locks taken under it, and the whole hold ended by revoking the lease (which releases every
lock of it at once and deletes the keys attached to it). Losses are reported as `Client.lock`
reports them: see `HeldLock`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from lockservice_client._proto import lock_pb2
from lockservice_client.client import Client
from lockservice_client.errors import LeaseNotFound, LockHeld, LockserviceError
from lockservice_client.held_lock import HeldLock, OnLost, holding
from lockservice_client.keepalive import LeaseKeeper, LeaseSchedule

__all__ = ["WAIT_CHUNK_SECONDS", "Deadline", "LossRelay", "acquire_waiting", "hold_under_lease", "log"]

# A wait without end is made of server-side waits this long (the server caps one at an hour).
WAIT_CHUNK_SECONDS = 300.0

log = logging.getLogger("lockservice_client")


class Deadline:
    """The end of a wait of `seconds` from now, or none when `seconds` is None."""

    def __init__(self, seconds: float | None) -> None:
        self._at = None if seconds is None else time.monotonic() + seconds

    def remaining(self, cap: float = WAIT_CHUNK_SECONDS) -> float:
        """Seconds left, at most `cap` (0 once passed)."""
        if self._at is None:
            return cap
        return min(cap, max(0.0, self._at - time.monotonic()))

    @property
    def passed(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at


def acquire_waiting(
    client: Client, name: str, lease_id: str, holder: str, deadline: Deadline, cap: float = WAIT_CHUNK_SECONDS
) -> lock_pb2.Lock:
    """Takes lock `name` under `lease_id`, queueing (first come, first served) until `deadline`
    but at most `cap` seconds. Raises LockHeld when it is still held then."""
    while True:
        try:
            return client.acquire_lock(name, lease_id=lease_id, holder=holder, wait=deadline.remaining(cap))
        except LockHeld:
            if deadline.passed or cap < WAIT_CHUNK_SECONDS:
                raise


class LossRelay:
    """Passes the keeper's report of a lost lease to the HeldLock, which exists only once the
    locks are taken (a loss reported before then is passed on at once)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cause: BaseException | None = None
        self._held: HeldLock | None = None

    def lost(self, cause: BaseException) -> None:
        with self._mutex:
            held, self._cause = self._held, cause
        if held is not None:
            held.mark_lost(cause)

    def forward_to(self, held: HeldLock) -> None:
        with self._mutex:
            self._held, cause = held, self._cause
        if cause is not None:
            held.mark_lost(cause)


@contextlib.contextmanager
def hold_under_lease(
    client: Client,
    ttl_seconds: int,
    holder: str,
    on_lost: OnLost | None,
    take: Callable[[str], lock_pb2.Lock],
) -> Iterator[HeldLock]:
    """Grants a lease of `ttl_seconds`, keeps it alive, calls `take(lease_id)` to take the
    recipe's locks under it (its answer is the lock whose token the hold shows), yields the
    `HeldLock` and revokes the lease on exit. When `take` raises, the lease is revoked too."""
    sent_at = time.monotonic()
    lease_id = client.grant_lease(ttl_seconds, holder=holder).lease_id
    relay = LossRelay()
    keeper = LeaseKeeper(
        lambda timeout: client.refresh_lease(lease_id, timeout=timeout),
        LeaseSchedule(ttl_seconds, sent_at),
        relay.lost,
    )
    keeper.start()
    try:
        held = HeldLock(take(lease_id), ttl_seconds, on_lost)
    except BaseException:
        keeper.stop()
        _revoke(client, lease_id, None)
        raise
    relay.forward_to(held)
    with holding(held, keeper.stop, lambda: _revoke(client, lease_id, held)):
        yield held


def _revoke(client: Client, lease_id: str, held: HeldLock | None) -> None:
    """Ends the hold. A lease already gone means the locks were lost before the end; any other
    failure only leaves the lease to expire, so it is logged, not raised."""
    try:
        client.revoke_lease(lease_id)
    except LeaseNotFound as error:
        if held is not None:
            held.mark_lost(error)
    except LockserviceError as error:
        log.warning("could not revoke lease %s: %s", lease_id, error)
