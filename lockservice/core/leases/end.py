"""Ending a lease, by revocation or at its deadline, and everything that hangs on it, at once.

In one atomic step its locks go to their next waiters (after an expiry, past their lock-delay),
its queued waiters are dropped, and its resources are deleted as EXPIRE events at one new
revision. The lock side of this is the locks' (`lockservice.core.locks.handoff`): the one place
the leases reach into the locks.
"""

from __future__ import annotations

from lockservice.core.locks.handoff import free_locks_of
from lockservice.model import Lease, LeaseEnded
from lockservice.store.base import WriteTxn

__all__ = ["end_lease"]


def end_lease(txn: WriteTxn, lease: Lease, *, expired: bool) -> LeaseEnded:
    """Ends `lease` (`expired` when its deadline passed, not revoked); returns what went with it."""
    released = free_locks_of(txn, lease.lease_id, expired=expired)
    keys = txn.lease_resource_keys(lease.lease_id)
    if keys:
        txn.next_revision()
        for key in keys:
            txn.delete(key, expired=True)
    txn.delete_lease(lease.lease_id)
    return LeaseEnded(
        revision=txn.current_revision(), released_locks=tuple(released), deleted_keys=tuple(keys)
    )
