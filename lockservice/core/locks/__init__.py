"""Locks, one module per job:

- `listing`: ListLocks, a page of locks as the caller may see them;
- `service`: `Locks`, the entry points of LockService (acquire, release, get);
- `queue`: joining the waiter queue, waiting in it, leaving it;
- `handoff`: taking, releasing and handing over a lock inside a write body;
- `fencing`: a resource write carrying a lock's token is applied only while the token holds;
- `views`: what a lock looks like (its view, its conflict state, LOCK_HELD);
- `expiry`: the lock-expiry rule, written once.

A lock is held under a lease: these modules use the leases' `grant`, `lifetime` and `end`
(`lockservice.core.leases`); the leases reach back only into `handoff` (tests/test_layers.py).
"""

from lockservice.core.locks.fencing import check_fence, check_fence_shape
from lockservice.core.locks.handoff import free_locks_of, give_back, hand_over, release_in, take
from lockservice.core.locks.service import Locks
from lockservice.core.locks.views import lock_conflict, lock_view, lock_view_in, new_lock_state

__all__ = [
    "Locks",
    "check_fence",
    "check_fence_shape",
    "free_locks_of",
    "give_back",
    "hand_over",
    "lock_conflict",
    "lock_view",
    "lock_view_in",
    "new_lock_state",
    "release_in",
    "take",
]
