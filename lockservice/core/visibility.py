"""What a caller may learn of state it may not read: nothing, from a conflict or an answer.

A conflict (RESOURCE_EXISTS, VERSION_MISMATCH, VALUE_MISMATCH, TRANSACTION_CONFLICT, LOCK_HELD,
LOCK_NOT_HELD, STALE_FENCE, a missing version) carries the current state of one key or lock:
value, version, etag, times, revisions, content type, holder, token, lease, expiry. That state
is exactly what the read right guards (GetResource, GetLock), so a caller without the read right
on the conflict's key (a write-only or lock-only identity) gets the same error class, code and
reason with the state withheld: the detail keeps only the key, what the request expected and
the compare index (all echoes of the request), the message says no more than the reason, and
the ErrorInfo metadata keeps only the key or lock name. Whether a withheld key exists is state
too, and is not said (beyond what the reason itself implies, as RESOURCE_EXISTS does).

A few answers also carry state the caller did not write: a delete's (or a transaction's
delete's) last state of the key, and a release's lock after the next waiter took it over. A
caller without the read right gets the delete without that state (as for a key that was
already missing) and the lock as its release left it (free, its own token, no queue); the
answer of its own acquire keeps its own holding, without the count of others queued.

A listing of locks (ListLocks) shows only the locks the caller may read; of a lock it may read
but not take (no lock right), it shows neither the holder, its lease and token, nor who queues
(only that the lock is held, since when, until when, and how many queue).

Errors without a conflict carry no state and pass unchanged, as does everything when no policy
is set (authentication off, or no `--auth-policy`: every caller may read every key).
"""

from __future__ import annotations

from dataclasses import replace

from lockservice import errors
from lockservice.core.access import AccessPolicy, Right
from lockservice.core.locks.views import new_lock_state
from lockservice.model import (
    ConflictState,
    DeleteResult,
    LockListing,
    LockView,
    LockWaiter,
    OperationResult,
    TransactResult,
)

__all__ = ["EVERYTHING", "Visibility"]

# What the message of a withheld conflict says, by error class; `{key}` is the key or lock name,
# `{expected}` and `{index}` echo the request.
_WITHHELD_MESSAGES: dict[type[errors.LockserviceError], str] = {
    errors.ResourceExists: "{key} already exists",
    errors.VersionMismatch: "{key} is not at the expected {expected}",
    errors.ValueMismatch: "{key} does not match the expected {expected}",
    errors.TransactionConflict: "compares[{index}] failed: {key} is not {expected}",
    errors.LockHeld: "lock {key} is not free",
    errors.LockNotHeld: "{expected} does not hold lock {key}",
    errors.StaleFence: "fence {expected} is stale for lock {key}",
}
_WITHHELD_NOTE = "; its current state is withheld: this identity may not read it"
# ErrorInfo metadata that names what the request named, never the state it found.
_NAMING_METADATA = ("key", "name", "lock_name", "compare_index")


class Visibility:
    """What one caller may see: everything, or what its read grants cover."""

    __slots__ = ("_identity", "_policy")

    def __init__(self, policy: AccessPolicy | None = None, identity: str = "") -> None:
        self._policy = policy
        self._identity = identity

    def may_read(self, key: str) -> bool:
        return self._policy is None or self._policy.allows(self._identity, Right.READ, key)

    def may_lock(self, key: str) -> bool:
        return self._policy is None or self._policy.allows(self._identity, Right.LOCK, key)

    def listed(self, listing: LockListing) -> LockListing | None:
        """A lock as ListLocks shows it: None (left out) without the read right; without the
        lock right, with its holder, lease, token and queued holders withheld."""
        name = listing.view.state.name
        if not self.may_read(name):
            return None
        if self.may_lock(name):
            return listing
        state = replace(listing.view.state, holder="", lease_id="", token=0, grant_id="")
        return LockListing(
            view=replace(listing.view, state=state),
            queue=tuple(_anonymous(waiter) for waiter in listing.queue),
            detail_withheld=True,
        )

    def error(self, error: errors.LockserviceError) -> errors.LockserviceError:
        """`error` as this caller may see it: itself, or a copy with the conflict's state withheld."""
        conflict = error.conflict
        if conflict is None or self.may_read(conflict.key):
            return error
        return _withheld(error, conflict)

    def deleted(self, result: DeleteResult) -> DeleteResult:
        """A delete's answer: the last state of the key only for a reader."""
        if result.resource is None or self.may_read(result.resource.key):
            return result
        return DeleteResult(resource=None, revision=result.revision)

    def transacted(self, result: TransactResult) -> TransactResult:
        """A transaction's answer: each delete's last state only for a reader of its key (a
        put's result is the state the caller wrote)."""
        if self._policy is None:
            return result
        return replace(
            result,
            results=tuple(
                OperationResult(resource=None, deleted=True)
                if r.deleted and r.resource is not None and not self.may_read(r.resource.key)
                else r
                for r in result.results
            ),
        )

    def acquired(self, view: LockView) -> LockView:
        """The caller's own acquisition; how many others queue for the lock only for a reader."""
        return view if self.may_read(view.state.name) else replace(view, waiters=0)

    def released(self, view: LockView, token: int) -> LockView:
        """The lock after the caller released `token`: as it is now for a reader (perhaps held by
        the waiter that took it over), else as the release left it (free, the released token)."""
        if self.may_read(view.state.name):
            return view
        return LockView(
            state=replace(new_lock_state(view.state.name), token=token), expire_time_us=0, waiters=0
        )


EVERYTHING = Visibility()


def _anonymous(waiter: LockWaiter) -> LockWaiter:
    """A queued caller with only its place and deadline: no holder, lease or request."""
    return LockWaiter(
        waiter_id="",
        name=waiter.name,
        seq=waiter.seq,
        holder="",
        lease_id="",
        ttl_seconds=0,
        lock_delay_us=0,
        deadline_us=waiter.deadline_us,
    )


def _withheld(error: errors.LockserviceError, conflict: ConflictState) -> errors.LockserviceError:
    template = _WITHHELD_MESSAGES.get(type(error), "the request conflicts with the current state of {key}")
    message = template.format(key=conflict.key, expected=conflict.expected, index=conflict.compare_index)
    return type(error)(
        message + _WITHHELD_NOTE,
        metadata={name: value for name, value in error.metadata.items() if name in _NAMING_METADATA},
        conflict=ConflictState(
            key=conflict.key,
            current=None,
            expected=conflict.expected,
            compare_index=conflict.compare_index,
            withheld=True,
        ),
    )
