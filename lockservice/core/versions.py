"""Writing a new version of a key inside a write body, and what a write may be conditioned on.

Shared by the single-key writes (`resources`) and the multi-operation ones (`transactions`):
the version rule (1 when missing, else +1, at the body's one new revision), the expectations
a compare checks, the fence and lease a write may carry, and the conflict state of a key.
"""

from __future__ import annotations

from lockservice.core.leases.lifetime import require_live_lease
from lockservice.core.limits import Limits
from lockservice.core.locks.fencing import check_fence_shape
from lockservice.core.ownership import check_lease_owner
from lockservice.core.validation import check_lease_id
from lockservice.model import (
    DEFAULT_CONTENT_TYPE,
    ConflictState,
    ExpectAbsent,
    Expectation,
    ExpectEtag,
    ExpectPresent,
    ExpectValue,
    ExpectVersion,
    Fence,
    Resource,
)
from lockservice.store.base import WriteTxn

__all__ = ["check_attachments", "expectation_holds", "key_conflict", "write_next_version", "write_version"]


def expectation_holds(current: Resource | None, expectation: Expectation) -> bool:
    match expectation:
        case ExpectVersion(version):
            return current is not None and current.version == version
        case ExpectEtag(etag):
            return current is not None and current.etag == etag
        case ExpectValue(value):
            return current is not None and current.value == value
        case ExpectAbsent():
            return current is None
        case ExpectPresent():
            return current is not None


def key_conflict(key: str, current: Resource | None, revision: int, expected: str = "") -> ConflictState:
    """The conflict detail of a key: its current state against what the caller expected."""
    return ConflictState(key=key, current=current, expected=expected, revision=revision)


def check_attachments(
    limits: Limits, fence: Fence | None = None, lease_id: str = "", owner: str | None = None
) -> None:
    """A fence of the right shape; a lease id of the right shape that the caller owns."""
    check_fence_shape(fence, limits)
    if lease_id:
        check_lease_id(lease_id)
        check_lease_owner(lease_id, owner)


def write_version(txn: WriteTxn, key: str, value: bytes, content_type: str, lease_id: str) -> Resource:
    """Puts a new version of `key`: version 1 if missing, else +1; returns the new state."""
    return write_next_version(txn, txn.get(key), key, value, content_type, lease_id)


def write_next_version(
    txn: WriteTxn, current: Resource | None, key: str, value: bytes, content_type: str, lease_id: str
) -> Resource:
    """`write_version` for a body that has just read `current` (`txn.get(key)`) itself: it
    saves a second read of the same row on every compare-and-write."""
    if lease_id:
        require_live_lease(txn, lease_id)
    revision = txn.next_revision()
    now = txn.now_us
    if current is None:
        resource = Resource(
            key=key,
            value=value,
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            version=1,
            create_revision=revision,
            mod_revision=revision,
            create_time_us=now,
            update_time_us=now,
            lease_id=lease_id,
        )
    else:
        resource = Resource(
            key=key,
            value=value,
            content_type=content_type or current.content_type,
            version=current.version + 1,
            create_revision=current.create_revision,
            mod_revision=revision,
            create_time_us=current.create_time_us,
            update_time_us=max(now, current.update_time_us),
            lease_id=lease_id or current.lease_id,
        )
    txn.put(resource)
    return resource
