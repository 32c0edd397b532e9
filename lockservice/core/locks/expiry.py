"""The lock-expiry rule, written once: a lock is held only while its holder's lease is live,
and a lock freed by an expiry stays unavailable for its lock-delay.

Past its lease's deadline (`lockservice.core.leases.lifetime.is_live`) the holder has lost the
lock even before the expiry task ends the lease: its token no longer fences, its release is
refused, and an acquire ends that lease and takes the lock.
"""

from __future__ import annotations

from lockservice.model import Lease, LockState
from lockservice.store.base import WriteTxn

__all__ = ["available_time_after_release", "holder_lease", "is_available"]


def holder_lease(txn: WriteTxn, state: LockState) -> Lease | None:
    """The lease a held lock is held under, live or not; None when the lock is free or the
    lease is gone. Whether it still holds the lock is `is_live(lease, txn.now_us)`."""
    return txn.get_lease(state.lease_id) if state.held else None


def is_available(state: LockState, now_us: int) -> bool:
    """Whether the lock is free and past its lock-delay, so the queue (or a caller) may take it."""
    return not state.held and state.available_time_us <= now_us


def available_time_after_release(state: LockState, now_us: int, *, expired: bool) -> int:
    """When a lock being freed may be taken again (0: at once). After an *expiry* with a
    lock-delay it stays unavailable for the delay, so a paused former holder's in-flight work
    drains; a release by its holder frees it at once."""
    return now_us + state.lock_delay_us if expired and state.lock_delay_us > 0 else 0
