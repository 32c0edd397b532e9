"""Granting a lease inside a write body: its id, its TTL's bounds, the store's lease capacity.

Used by GrantLease and by the locks, which grant a lease of its own to a caller that acquires
(or is handed) a lock with a TTL instead of a lease.
"""

from __future__ import annotations

from lockservice.core.limits import Limits
from lockservice.core.ownership import mint_lease_id
from lockservice.errors import InvalidTtl, LimitExceeded
from lockservice.model import Lease
from lockservice.store.base import WriteTxn

__all__ = ["check_lease_capacity", "check_ttl", "grant_in", "new_lease_id"]


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
    """Stores a new lease of `ttl_seconds` from the store's now. `owner_lock` names the lock it
    was granted for (it ends with that lock's release); `owner_tag` its owner's identity."""
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
