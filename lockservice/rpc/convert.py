"""Wire <-> model conversion: protobuf messages in, frozen dataclasses out, and back.

Only the shape of the wire is checked here (which oneof is set); every rule lives in the core.
`owner` is the caller's authenticated identity (`rpc.auth.caller()`), None when auth is off.
"""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from lockservice.core import requests as rq
from lockservice.core.leases.listing import LeasePage
from lockservice.core.locks.listing import LockPage
from lockservice.errors import InvalidArgument
from lockservice.model import (
    ChangeEvent,
    Compare,
    DeleteOperation,
    DeleteResult,
    EventType,
    ExpectAbsent,
    Expectation,
    ExpectEtag,
    ExpectPresent,
    ExpectValue,
    ExpectVersion,
    Fence,
    Lease,
    LeaseEnded,
    LeaseView,
    LockListing,
    LockView,
    Operation,
    PutOperation,
    Resource,
    TransactResult,
    WatchBatch,
)
from lockservice.v1 import lease_pb2, lock_pb2, resource_pb2

__all__ = [
    "acquire_request",
    "compare_and_set_request",
    "create_request",
    "delete_request",
    "delete_response",
    "get_request",
    "grant_request",
    "keepalive_response",
    "lease_ended_response",
    "lease_to_proto",
    "lease_view_to_proto",
    "list_request",
    "list_versions_request",
    "lock_to_proto",
    "release_request",
    "resource_to_proto",
    "timestamp",
    "transact_request",
    "transact_response",
    "update_request",
    "watch_request",
    "watch_response",
]


def timestamp(micros: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(micros)
    return ts


def resource_to_proto(resource: Resource) -> resource_pb2.Resource:
    return resource_pb2.Resource(
        key=resource.key,
        value=resource.value,
        content_type=resource.content_type,
        version=resource.version,
        etag=resource.etag,
        create_revision=resource.create_revision,
        mod_revision=resource.mod_revision,
        create_time=timestamp(resource.create_time_us),
        update_time=timestamp(resource.update_time_us),
        lease_id=resource.lease_id,
    )


def _fence(message: lock_pb2.Fence, present: bool) -> Fence | None:
    return Fence(lock_name=message.lock_name, token=message.token) if present else None


def _with_values(view: int) -> bool:
    if view not in resource_pb2.ResourceView.values():
        raise InvalidArgument(f"view {view} is not a ResourceView", metadata={"field": "view"})
    return view == resource_pb2.RESOURCE_VIEW_FULL


def create_request(m: resource_pb2.CreateResourceRequest, owner: str | None = None) -> rq.CreateResource:
    return rq.CreateResource(
        key=m.key,
        value=m.value,
        content_type=m.content_type,
        lease_id=m.lease_id,
        request_id=m.request_id,
        owner=owner,
    )


def get_request(m: resource_pb2.GetResourceRequest) -> rq.GetResource:
    return rq.GetResource(key=m.key, version=m.version)


def update_request(m: resource_pb2.UpdateResourceRequest, owner: str | None = None) -> rq.UpdateResource:
    return rq.UpdateResource(
        key=m.key,
        value=m.value,
        content_type=m.content_type,
        expected_version=m.expected_version if m.HasField("expected_version") else None,
        expected_etag=m.expected_etag,
        allow_missing=m.allow_missing,
        fence=_fence(m.fence, m.HasField("fence")),
        lease_id=m.lease_id,
        request_id=m.request_id,
        owner=owner,
    )


def delete_request(m: resource_pb2.DeleteResourceRequest, owner: str | None = None) -> rq.DeleteResource:
    return rq.DeleteResource(
        key=m.key,
        expected_version=m.expected_version if m.HasField("expected_version") else None,
        expected_etag=m.expected_etag,
        allow_missing=m.allow_missing,
        fence=_fence(m.fence, m.HasField("fence")),
        request_id=m.request_id,
        owner=owner,
    )


def _maybe_resource(resource: Resource | None) -> resource_pb2.Resource | None:
    return None if resource is None else resource_to_proto(resource)


def delete_response(result: DeleteResult) -> resource_pb2.DeleteResourceResponse:
    return resource_pb2.DeleteResourceResponse(
        resource=_maybe_resource(result.resource), revision=result.revision
    )


def list_request(m: resource_pb2.ListResourcesRequest) -> rq.ListResources:
    return rq.ListResources(
        prefix=m.prefix, page_size=m.page_size, page_token=m.page_token, with_values=_with_values(m.view)
    )


def list_versions_request(m: resource_pb2.ListResourceVersionsRequest) -> rq.ListResourceVersions:
    return rq.ListResourceVersions(
        key=m.key, page_size=m.page_size, page_token=m.page_token, with_values=_with_values(m.view)
    )


def _cas_expectation(m: resource_pb2.CompareAndSetRequest) -> Expectation | None:
    match m.WhichOneof("expected"):
        case "expected_version":
            return ExpectVersion(m.expected_version)
        case "expected_etag":
            return ExpectEtag(m.expected_etag)
        case "expected_value":
            return ExpectValue(m.expected_value)
        case "expect_absent":
            return ExpectAbsent() if m.expect_absent else ExpectPresent()
    return None


def compare_and_set_request(
    m: resource_pb2.CompareAndSetRequest, owner: str | None = None
) -> rq.CompareAndSet:
    return rq.CompareAndSet(
        key=m.key,
        expectation=_cas_expectation(m),
        value=m.value,
        content_type=m.content_type,
        fence=_fence(m.fence, m.HasField("fence")),
        lease_id=m.lease_id,
        request_id=m.request_id,
        owner=owner,
    )


def _compare(index: int, m: resource_pb2.Compare) -> Compare:
    expectation: Expectation
    match m.WhichOneof("expected"):
        case "version":
            expectation = ExpectVersion(m.version)
        case "etag":
            expectation = ExpectEtag(m.etag)
        case "value":
            expectation = ExpectValue(m.value)
        case "absent":
            expectation = ExpectAbsent() if m.absent else ExpectPresent()
        case _:
            raise InvalidArgument(
                f"compares[{index}] sets none of version, etag, value or absent",
                metadata={"field": f"compares[{index}]"},
            )
    return Compare(key=m.key, expectation=expectation)


def _operation(index: int, m: resource_pb2.Operation) -> Operation:
    match m.WhichOneof("operation"):
        case "put":
            return PutOperation(
                key=m.put.key, value=m.put.value, content_type=m.put.content_type, lease_id=m.put.lease_id
            )
        case "delete":
            return DeleteOperation(key=m.delete.key)
    raise InvalidArgument(
        f"operations[{index}] is neither a put nor a delete", metadata={"field": f"operations[{index}]"}
    )


def transact_request(m: resource_pb2.TransactRequest, owner: str | None = None) -> rq.Transact:
    return rq.Transact(
        compares=tuple(_compare(i, c) for i, c in enumerate(m.compares)),
        operations=tuple(_operation(i, o) for i, o in enumerate(m.operations)),
        fence=_fence(m.fence, m.HasField("fence")),
        request_id=m.request_id,
        owner=owner,
    )


def transact_response(result: TransactResult) -> resource_pb2.TransactResponse:
    return resource_pb2.TransactResponse(
        revision=result.revision,
        results=[
            resource_pb2.OperationResult(resource=_maybe_resource(r.resource), deleted=r.deleted)
            for r in result.results
        ],
    )


_MAX_NANOS = 999_999_999


def _seconds(duration: Duration, field: str) -> float:
    """A google.protobuf.Duration in seconds; INVALID_ARGUMENT unless it is one: `nanos` within
    +-999,999,999 and of the same sign as `seconds` (else 3000 s and -1 ns would read as a wait)."""
    seconds, nanos = duration.seconds, duration.nanos
    if abs(nanos) > _MAX_NANOS or (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
        raise InvalidArgument(
            f"{field} is not a valid Duration: nanos must be within +-999,999,999 with the sign of seconds",
            metadata={"field": field},
        )
    return seconds + nanos / 1e9


def _duration(micros: int) -> Duration:
    duration = Duration()
    duration.FromMicroseconds(micros)
    return duration


def grant_request(m: lease_pb2.GrantLeaseRequest, owner: str | None = None) -> rq.GrantLease:
    return rq.GrantLease(ttl_seconds=m.ttl_seconds, holder=m.holder, request_id=m.request_id, owner=owner)


def lease_to_proto(lease: Lease, remaining_ms: int | None = None) -> lease_pb2.Lease:
    return lease_pb2.Lease(
        lease_id=lease.lease_id,
        holder=lease.holder,
        ttl_seconds=lease.ttl_seconds,
        grant_time=timestamp(lease.grant_time_us),
        expire_time=timestamp(lease.expire_time_us),
        remaining_ms=lease.ttl_seconds * 1000 if remaining_ms is None else remaining_ms,
    )


def lease_view_to_proto(view: LeaseView) -> lease_pb2.Lease:
    message = lease_to_proto(view.lease, view.remaining_ms)
    message.lock_names.extend(view.lock_names)
    message.resource_keys.extend(view.resource_keys)
    return message


def keepalive_response(lease: Lease) -> lease_pb2.KeepAliveResponse:
    return lease_pb2.KeepAliveResponse(
        lease_id=lease.lease_id, expire_time=timestamp(lease.expire_time_us), ttl_seconds=lease.ttl_seconds
    )


def lease_ended_response(ended: LeaseEnded) -> lease_pb2.RevokeLeaseResponse:
    return lease_pb2.RevokeLeaseResponse(
        revision=ended.revision, released_locks=ended.released_locks, deleted_keys=ended.deleted_keys
    )


def acquire_request(m: lock_pb2.AcquireLockRequest, owner: str | None = None) -> rq.AcquireLock:
    return rq.AcquireLock(
        name=m.name,
        lease_id=m.lease_id,
        ttl_seconds=m.ttl_seconds,
        holder=m.holder,
        wait_timeout_seconds=_seconds(m.wait_timeout, "wait_timeout"),
        lock_delay_seconds=_seconds(m.lock_delay, "lock_delay") if m.HasField("lock_delay") else None,
        request_id=m.request_id,
        owner=owner,
    )


def release_request(m: lock_pb2.ReleaseLockRequest, owner: str | None = None) -> rq.ReleaseLock:
    return rq.ReleaseLock(name=m.name, token=m.token, request_id=m.request_id, owner=owner)


def lock_to_proto(view: LockView) -> lock_pb2.Lock:
    state = view.state
    message = lock_pb2.Lock(
        name=state.name,
        held=state.held,
        holder=state.holder,
        lease_id=state.lease_id,
        token=state.token,
        waiters=view.waiters,
        lock_delay=_duration(state.lock_delay_us),
    )
    if state.held:
        message.acquire_time.CopyFrom(timestamp(state.acquire_time_us))
        if view.expire_time_us:
            message.expire_time.CopyFrom(timestamp(view.expire_time_us))
    elif state.available_time_us:
        message.available_time.CopyFrom(timestamp(state.available_time_us))
    return message


def list_locks_request(m: lock_pb2.ListLocksRequest) -> rq.ListLocks:
    return rq.ListLocks(
        prefix=m.prefix, page_size=m.page_size, page_token=m.page_token, include_queue=m.include_queue
    )


def _listed_lock(listing: LockListing) -> lock_pb2.Lock:
    message = lock_to_proto(listing.view)
    message.detail_withheld = listing.detail_withheld
    for waiter in listing.queue:
        message.queue.add(holder=waiter.holder, deadline=timestamp(waiter.deadline_us))
    return message


def list_locks_response(page: LockPage) -> lock_pb2.ListLocksResponse:
    return lock_pb2.ListLocksResponse(
        locks=[_listed_lock(listing) for listing in page.locks], next_page_token=page.next_page_token
    )


def list_leases_request(m: lease_pb2.ListLeasesRequest, owner: str | None) -> rq.ListLeases:
    return rq.ListLeases(holder=m.holder, page_size=m.page_size, page_token=m.page_token, owner=owner)


def list_leases_response(page: LeasePage) -> lease_pb2.ListLeasesResponse:
    return lease_pb2.ListLeasesResponse(
        leases=[lease_view_to_proto(view) for view in page.leases], next_page_token=page.next_page_token
    )


def watch_request(m: resource_pb2.WatchRequest) -> rq.Watch:
    return rq.Watch(key=m.key, prefix=m.prefix, start_revision=m.start_revision)


_EVENT_TYPES = {
    EventType.PUT: resource_pb2.WatchEvent.PUT,
    EventType.DELETE: resource_pb2.WatchEvent.DELETE,
    EventType.EXPIRE: resource_pb2.WatchEvent.EXPIRE,
}


def _event(event: ChangeEvent) -> resource_pb2.WatchEvent:
    return resource_pb2.WatchEvent(
        type=_EVENT_TYPES[event.type], resource=resource_to_proto(event.resource), revision=event.revision
    )


def watch_response(batch: WatchBatch) -> resource_pb2.WatchResponse:
    return resource_pb2.WatchResponse(events=[_event(e) for e in batch.events], revision=batch.revision)
