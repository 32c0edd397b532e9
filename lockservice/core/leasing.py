"""Lease primitives used inside write bodies by leases, locks and resources."""

from __future__ import annotations

from lockservice.core.limits import Limits
from lockservice.core.ownership import mint_lease_id
from lockservice.errors import InvalidTtl, LeaseNotFound, LimitExceeded
from lockservice.model import Lease
from lockservice.store.base import WriteTxn

__all__ = [
    "check_lease_capacity",
    "check_ttl",
    "grant_in",
    "lease_not_found",
    "live_lease",
    "new_lease_id",
    "require_live_lease",
]


def new_lease_id(owner_tag: str = "") -> str:
    """128 random bits: a lease id is a bearer capability, so it must not be guessable; after
    the owner's tag when authentication is on (`lockservice.core.ownership`)."""
    return mint_lease_id(owner_tag)


def check_ttl(ttl_seconds: int, limits: Limits, *, field: str = "ttl_seconds") -> None:
    low, high = limits.min_lease_ttl_seconds, limits.max_lease_ttl_seconds
    if not low <= ttl_seconds <= high:
        raise InvalidTtl(
            f"{field} is {ttl_seconds}; it must be between {low} and {high} seconds",
            metadata={"field": field, "min": str(low), "max": str(high)},
        )


def live_lease(txn: WriteTxn, lease_id: str) -> Lease | None:
    """The lease if it exists and its deadline has not passed (expired-but-not-yet-reaped counts
    as gone: nothing may be granted on the strength of a dead lease)."""
    lease = txn.get_lease(lease_id)
    if lease is None or lease.expire_time_us <= txn.now_us:
        return None
    return lease


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


def check_lease_capacity(txn: WriteTxn, limits: Limits) -> None:
    """Refuses a new lease, or a place in a lock queue that will make one at the hand-over, when
    the live leases and those promised to queued waiters already reach `max_leases`."""
    queued = txn.count_leaseless_waiters()
    if txn.lease_rows() + queued < limits.max_leases:
        return  # far from the limit: no count of the live leases (it would scan them all)
    live = txn.live_lease_count(txn.now_us)
    promised = queued if live < limits.max_leases else 0
    if live + promised >= limits.max_leases:
        held = f"{live} live leases" + (f" and {promised} promised to queued waiters" if promised else "")
        raise LimitExceeded(
            f"the store already holds {held}, the limit; revoke leases you no longer need",
            metadata={"limit": str(limits.max_leases), "quota": "leases"},
        )


def grant_in(
    txn: WriteTxn, ttl_seconds: int, holder: str, *, owner_lock: str = "", owner_tag: str = ""
) -> Lease:
    now = txn.now_us
    lease = Lease(
        lease_id=new_lease_id(owner_tag),
        holder=holder,
        ttl_seconds=ttl_seconds,
        grant_time_us=now,
        expire_time_us=now + ttl_seconds * 1_000_000,
        owner_lock=owner_lock,
    )
    txn.put_lease(lease)
    return lease
