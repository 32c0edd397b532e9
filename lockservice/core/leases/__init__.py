"""Leases, one module per job:

- `listing`: ListLeases, a page of the caller's live leases;
- `service`: `Leases`, the entry points of LeaseService (grant, refresh, revoke, get);
- `grant`: granting a lease inside a write body (id, TTL bounds, the store's capacity);
- `end`: ending a lease, revoked or expired, with its locks, waiters and resources;
- `lifetime`: the lease-expiry rule, written once.

The locks sit on these (a lock is held under a lease); the leases reach into the locks only
where a lease's end frees its locks (`end` uses `lockservice.core.locks.handoff`).
"""

# The locks load first. `end` uses the locks' hand-over and the locks' service uses `end`:
# loading this package first would have the locks' service find `end` half-loaded.
import lockservice.core.locks  # noqa: F401
from lockservice.core.leases.end import end_lease
from lockservice.core.leases.grant import check_lease_capacity, check_ttl, grant_in, new_lease_id
from lockservice.core.leases.lifetime import is_live, lease_not_found, live_lease, require_live_lease
from lockservice.core.leases.service import Leases

__all__ = [
    "Leases",
    "check_lease_capacity",
    "check_ttl",
    "end_lease",
    "grant_in",
    "is_live",
    "lease_not_found",
    "live_lease",
    "new_lease_id",
    "require_live_lease",
]
