"""Request messages for every call, built in one place for the sync and asyncio clients.

Each mutating request gets a fresh `request_id` here, once per logical operation: the channel's
own retries (on UNAVAILABLE) resend the same bytes, so the server answers a retried write from
its idempotency record instead of applying it twice.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence

from google.protobuf import duration_pb2

from lockservice_client._proto import lease_pb2, lock_pb2, resource_pb2
from lockservice_client.errors import Conflict

__all__ = [
    "acquire_lock",
    "compare_and_set",
    "create_resource",
    "default_holder",
    "delete_resource",
    "grant_lease",
    "list_resources",
    "list_versions",
    "new_request_id",
    "refresh_lease",
    "release_lock",
    "revoke_lease",
    "state_from_conflict",
    "transact",
    "update_resource",
    "write_if_unchanged",
]


def new_request_id() -> str:
    """An AIP-155 request id: a random UUID."""
    return str(uuid.uuid4())


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def create_resource(
    key: str, value: bytes, content_type: str, lease_id: str
) -> resource_pb2.CreateResourceRequest:
    return resource_pb2.CreateResourceRequest(
        key=key, value=value, content_type=content_type, lease_id=lease_id, request_id=new_request_id()
    )


def update_resource(
    key: str,
    value: bytes,
    *,
    content_type: str,
    expected_version: int | None,
    expected_etag: str,
    allow_missing: bool,
    fence: lock_pb2.Fence | None,
    lease_id: str,
) -> resource_pb2.UpdateResourceRequest:
    request = resource_pb2.UpdateResourceRequest(
        key=key,
        value=value,
        content_type=content_type,
        expected_etag=expected_etag,
        allow_missing=allow_missing,
        fence=fence,
        lease_id=lease_id,
        request_id=new_request_id(),
    )
    if expected_version is not None:
        request.expected_version = expected_version
    return request


def delete_resource(
    key: str,
    *,
    expected_version: int | None,
    expected_etag: str,
    allow_missing: bool,
    fence: lock_pb2.Fence | None,
) -> resource_pb2.DeleteResourceRequest:
    request = resource_pb2.DeleteResourceRequest(
        key=key,
        expected_etag=expected_etag,
        allow_missing=allow_missing,
        fence=fence,
        request_id=new_request_id(),
    )
    if expected_version is not None:
        request.expected_version = expected_version
    return request


def compare_and_set(
    key: str,
    value: bytes,
    *,
    expected_version: int | None,
    expected_etag: str | None,
    expected_value: bytes | None,
    expect_absent: bool,
    content_type: str,
    fence: lock_pb2.Fence | None,
    lease_id: str,
) -> resource_pb2.CompareAndSetRequest:
    """Raises ValueError unless exactly one expectation is given (the server would refuse it)."""
    given = [
        expected_version is not None,
        expected_etag is not None,
        expected_value is not None,
        expect_absent,
    ]
    if sum(given) != 1:
        raise ValueError(
            "compare_and_set needs exactly one of expected_version, expected_etag, expected_value, "
            "expect_absent"
        )
    request = resource_pb2.CompareAndSetRequest(
        key=key,
        value=value,
        content_type=content_type,
        fence=fence,
        lease_id=lease_id,
        request_id=new_request_id(),
    )
    if expected_version is not None:
        request.expected_version = expected_version
    elif expected_etag is not None:
        request.expected_etag = expected_etag
    elif expected_value is not None:
        request.expected_value = expected_value
    else:
        request.expect_absent = True
    return request


def grant_lease(ttl_seconds: int, holder: str) -> lease_pb2.GrantLeaseRequest:
    return lease_pb2.GrantLeaseRequest(ttl_seconds=ttl_seconds, holder=holder, request_id=new_request_id())


def refresh_lease(lease_id: str) -> lease_pb2.RefreshLeaseRequest:
    return lease_pb2.RefreshLeaseRequest(lease_id=lease_id, request_id=new_request_id())


def revoke_lease(lease_id: str) -> lease_pb2.RevokeLeaseRequest:
    return lease_pb2.RevokeLeaseRequest(lease_id=lease_id, request_id=new_request_id())


def acquire_lock(
    name: str, *, ttl_seconds: int | None, lease_id: str | None, holder: str, wait: float
) -> lock_pb2.AcquireLockRequest:
    """Under `lease_id` when given, else under a new lease of `ttl_seconds`; queue `wait` seconds."""
    if (ttl_seconds is None) == (lease_id is None):
        raise ValueError("acquire_lock needs exactly one of ttl_seconds and lease_id")
    request = lock_pb2.AcquireLockRequest(name=name, holder=holder, request_id=new_request_id())
    if lease_id is not None:
        request.lease_id = lease_id
    else:
        request.ttl_seconds = ttl_seconds or 0
    if wait > 0:
        request.wait_timeout.CopyFrom(_duration(wait))
    return request


def release_lock(name: str, token: int) -> lock_pb2.ReleaseLockRequest:
    return lock_pb2.ReleaseLockRequest(name=name, token=token, request_id=new_request_id())


def write_if_unchanged(
    key: str,
    value: bytes,
    current: resource_pb2.Resource | None,
    content_type: str,
    fence: lock_pb2.Fence | None,
) -> resource_pb2.CompareAndSetRequest:
    """The conditional write of `update()`: only if the key is still at `current`'s version, or
    still absent when `current` is None."""
    return compare_and_set(
        key,
        value,
        expected_version=None if current is None else current.version,
        expected_etag=None,
        expected_value=None,
        expect_absent=current is None,
        content_type=content_type,
        fence=fence,
        lease_id="",
    )


def state_from_conflict(key: str, conflict: Conflict | None) -> tuple[bool, resource_pb2.Resource | None]:
    """What a conflict says of the key now, for `update()`'s next try without a read:
    (True, the resource) or (True, None) when it is absent; (False, None) when the conflict
    does not carry the value (over 4 KiB, an older server, or a state withheld from a caller
    that may not read the key)."""
    if conflict is None or conflict.state_withheld:
        return False, None
    if not conflict.exists:
        return True, None
    if conflict.current_value is None:
        return False, None
    return True, resource_pb2.Resource(
        key=key,
        value=conflict.current_value,
        content_type=conflict.current_content_type,
        version=conflict.current_version,
        etag=conflict.current_etag,
    )


def list_resources(
    prefix: str, page_size: int, with_values: bool, page_token: str
) -> resource_pb2.ListResourcesRequest:
    return resource_pb2.ListResourcesRequest(
        prefix=prefix, page_size=page_size, page_token=page_token, view=_view(with_values)
    )


def list_versions(
    key: str, page_size: int, with_values: bool, page_token: str
) -> resource_pb2.ListResourceVersionsRequest:
    return resource_pb2.ListResourceVersionsRequest(
        key=key, page_size=page_size, page_token=page_token, view=_view(with_values)
    )


def _view(with_values: bool) -> resource_pb2.ResourceView.ValueType:
    return resource_pb2.RESOURCE_VIEW_FULL if with_values else resource_pb2.RESOURCE_VIEW_BASIC


def transact(
    compares: Sequence[resource_pb2.Compare],
    operations: Sequence[resource_pb2.Operation],
    fence: lock_pb2.Fence | None,
) -> resource_pb2.TransactRequest:
    return resource_pb2.TransactRequest(
        compares=compares, operations=operations, fence=fence, request_id=new_request_id()
    )


def default_holder() -> str:
    """Who is asking, when the caller does not say: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"
