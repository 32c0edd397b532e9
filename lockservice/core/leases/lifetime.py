"""The lease-expiry rule, written once: a lease is live until its deadline, and not after.

A lease past its deadline is gone even before the expiry task ends it: nothing may be granted,
kept or fenced on the strength of a dead lease, and every answer about it is LEASE_NOT_FOUND.
The locks apply this same rule to their holder's lease (`lockservice.core.locks.expiry`).
"""

from __future__ import annotations

from lockservice.errors import LeaseNotFound
from lockservice.model import Lease
from lockservice.store.base import WriteTxn

__all__ = ["is_live", "lease_not_found", "live_lease", "require_live_lease"]


def is_live(lease: Lease | None, now_us: int) -> bool:
    """Whether `lease` exists and its deadline has not passed at `now_us` (the store's clock)."""
    return lease is not None and lease.expire_time_us > now_us


def live_lease(txn: WriteTxn, lease_id: str) -> Lease | None:
    """The lease if it exists and its deadline has not passed (expired-but-not-yet-reaped counts
    as gone)."""
    lease = txn.get_lease(lease_id)
    return lease if is_live(lease, txn.now_us) else None


def require_live_lease(txn: WriteTxn, lease_id: str, *, field: str = "lease_id") -> Lease:
    lease = live_lease(txn, lease_id)
    if lease is None:
        raise lease_not_found(lease_id, field=field)
    return lease


def lease_not_found(lease_id: str, *, field: str = "") -> LeaseNotFound:
    """The one answer for a lease that was never granted, has expired or was revoked."""
    metadata = {"field": field, "lease_id": lease_id} if field else {"lease_id": lease_id}
    return LeaseNotFound(
        f"lease {lease_id} does not exist (never granted, expired or revoked)", metadata=metadata
    )
