"""AIP-155 request ids: a retry gets the first answer; a reused id with another payload is refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.e2e.support import (
    ServerFactory,
    assert_missing,
    create,
    expect_failure,
    get,
    update,
)

Stub = resource_pb2_grpc.ResourceServiceStub
LeaseStub = lease_pb2_grpc.LeaseServiceStub
LockStub = lock_pb2_grpc.LockServiceStub
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def rid() -> str:
    return str(uuid.uuid4())


def next_revision(resources: Stub, prefix: str) -> int:
    """Spends one revision on a marker write and returns it."""
    marker = update(resources, f"{prefix}/marker", uuid.uuid4().bytes, allow_missing=True)
    return marker.mod_revision


def test_retried_create_returns_the_first_answer(resources: Stub, prefix: str) -> None:
    key, request_id = f"{prefix}/k", rid()
    first = create(resources, key, b"v", request_id=request_id)
    for _ in range(3):
        assert create(resources, key, b"v", request_id=request_id) == first
    assert get(resources, key) == first
    assert next_revision(resources, prefix) == first.mod_revision + 1
    # Without the id, the same create is the conflict it really is.
    expect_failure(
        resources.CreateResource,
        resource_pb2.CreateResourceRequest(key=key, value=b"v"),
        grpc.StatusCode.ALREADY_EXISTS,
        "RESOURCE_EXISTS",
    )


def test_retried_update_returns_the_first_answer_without_a_spurious_conflict(
    resources: Stub, prefix: str
) -> None:
    key, request_id = f"{prefix}/k", rid()
    create(resources, key, b"v1")
    first = update(resources, key, b"v2", expected_version=1, request_id=request_id)
    assert first.version == 2
    retried = update(resources, key, b"v2", expected_version=1, request_id=request_id)
    assert retried == first
    assert get(resources, key) == first
    assert next_revision(resources, prefix) == first.mod_revision + 1

    # A retry after someone else wrote still gets the first answer, and changes nothing.
    third = update(resources, key, b"v3")
    assert update(resources, key, b"v2", expected_version=1, request_id=request_id) == first
    assert get(resources, key) == third


def test_retried_compare_and_set_returns_the_first_answer(resources: Stub, prefix: str) -> None:
    key, request_id = f"{prefix}/k", rid()
    request = resource_pb2.CompareAndSetRequest(
        key=key, expect_absent=True, value=b"v", request_id=request_id
    )
    first = resources.CompareAndSet(request, timeout=10)
    assert first.version == 1
    assert resources.CompareAndSet(request, timeout=10) == first
    assert get(resources, key) == first
    assert next_revision(resources, prefix) == first.mod_revision + 1


def test_a_retried_compare_and_set_gets_its_answer_after_the_key_moved_on(
    resources: Stub, prefix: str
) -> None:
    """A stale expectation is refused early from memory (SQLite), but never a retry of a write
    that succeeded: its request_id leads it to its first answer."""
    key, request_id = f"{prefix}/k", rid()
    create(resources, key, b"v1")
    request = resource_pb2.CompareAndSetRequest(
        key=key, expected_version=1, value=b"v2", request_id=request_id
    )
    first = resources.CompareAndSet(request, timeout=10)
    assert first.version == 2
    third = update(resources, key, b"v3")
    assert resources.CompareAndSet(request, timeout=10) == first
    stale = expect_failure(
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, expected_version=2, value=b"v4", request_id=rid()),
        grpc.StatusCode.ABORTED,
        "VERSION_MISMATCH",
    )
    assert stale.metadata == {"key": key, "current_version": "3"}
    assert get(resources, key) == third


def test_retried_delete_returns_the_first_answer(resources: Stub, prefix: str) -> None:
    key, request_id = f"{prefix}/k", rid()
    v1 = create(resources, key, b"v1")
    request = resource_pb2.DeleteResourceRequest(key=key, expected_version=1, request_id=request_id)
    first = resources.DeleteResource(request, timeout=10)
    assert first.resource == v1
    assert resources.DeleteResource(request, timeout=10) == first
    assert_missing(resources, key)

    # Even after the key is re-created, the retry answers the first delete and deletes nothing.
    again = create(resources, key, b"again")
    assert resources.DeleteResource(request, timeout=10) == first
    assert get(resources, key) == again
    assert next_revision(resources, prefix) == again.mod_revision + 1


def test_retried_transact_returns_the_first_answer(resources: Stub, prefix: str) -> None:
    a, b, request_id = f"{prefix}/a", f"{prefix}/b", rid()
    create(resources, b, b"b1")
    request = resource_pb2.TransactRequest(
        compares=[resource_pb2.Compare(key=a, absent=True)],
        operations=[
            resource_pb2.Operation(put=resource_pb2.PutOperation(key=a, value=b"a1")),
            resource_pb2.Operation(delete=resource_pb2.DeleteOperation(key=b)),
        ],
        request_id=request_id,
    )
    first = resources.Transact(request, timeout=10)
    assert resources.Transact(request, timeout=10) == first
    assert get(resources, a) == first.results[0].resource
    assert_missing(resources, b)
    assert next_revision(resources, prefix) == first.revision + 1


def test_concurrent_retries_of_one_request_all_get_the_one_answer(resources: Stub, prefix: str) -> None:
    key, request_id = f"{prefix}/k", rid()
    request = resource_pb2.CreateResourceRequest(key=key, value=b"v", request_id=request_id)
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(resources.CreateResource, request, timeout=10) for _ in range(16)]
        answers = [future.result() for future in futures]
    assert all(answer == answers[0] for answer in answers)
    assert answers[0].version == 1
    assert get(resources, key) == answers[0]
    assert next_revision(resources, prefix) == answers[0].mod_revision + 1


def test_a_failed_request_is_not_remembered(resources: Stub, prefix: str) -> None:
    key, request_id = f"{prefix}/k", rid()
    request = resource_pb2.UpdateResourceRequest(key=key, value=b"v", request_id=request_id)
    expect_failure(resources.UpdateResource, request, grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    create(resources, key, b"v1")
    # The retry is evaluated afresh against the current state.
    retried = resources.UpdateResource(request, timeout=10)
    assert (retried.version, retried.value) == (2, b"v")


def test_same_request_id_with_a_different_payload_is_request_id_reused(resources: Stub, prefix: str) -> None:
    key, request_id = f"{prefix}/k", rid()
    first = create(resources, key, b"v", request_id=request_id)
    for request in (
        resource_pb2.CreateResourceRequest(key=key, value=b"other", request_id=request_id),
        resource_pb2.CreateResourceRequest(key=f"{prefix}/other", value=b"v", request_id=request_id),
        resource_pb2.CreateResourceRequest(
            key=key, value=b"v", content_type="text/plain", request_id=request_id
        ),
    ):
        failure = expect_failure(resources.CreateResource, request, INVALID, "REQUEST_ID_REUSED")
        assert failure.metadata == {"field": "request_id", "request_id": request_id}
    assert get(resources, key) == first
    assert_missing(resources, f"{prefix}/other")


def test_same_request_id_on_another_method_is_request_id_reused(resources: Stub, prefix: str) -> None:
    key, request_id = f"{prefix}/k", rid()
    first = create(resources, key, b"v", request_id=request_id)
    attempts: list[tuple[Callable[..., Any], Any]] = [
        (
            resources.UpdateResource,
            resource_pb2.UpdateResourceRequest(key=key, value=b"v", request_id=request_id),
        ),
        (
            resources.CompareAndSet,
            resource_pb2.CompareAndSetRequest(key=key, expected_version=1, value=b"v", request_id=request_id),
        ),
        (resources.DeleteResource, resource_pb2.DeleteResourceRequest(key=key, request_id=request_id)),
        (
            resources.Transact,
            resource_pb2.TransactRequest(
                operations=[resource_pb2.Operation(put=resource_pb2.PutOperation(key=key, value=b"v"))],
                request_id=request_id,
            ),
        ),
    ]
    for call, request in attempts:
        failure = expect_failure(call, request, INVALID, "REQUEST_ID_REUSED")
        assert failure.metadata["field"] == "request_id"
    assert get(resources, key) == first


@pytest.mark.parametrize(
    "request_id",
    ["x" * 129, "has space", "tab\there", "new\nline", "caf\u00e9", "\x7f"],
    ids=["too-long", "space", "tab", "newline", "non-ascii", "del"],
)
def test_malformed_request_id_is_invalid_request_id(resources: Stub, prefix: str, request_id: str) -> None:
    key = f"{prefix}/k"
    for call, request in (
        (resources.CreateResource, resource_pb2.CreateResourceRequest(key=key, request_id=request_id)),
        (
            resources.UpdateResource,
            resource_pb2.UpdateResourceRequest(key=key, allow_missing=True, request_id=request_id),
        ),
        (
            resources.CompareAndSet,
            resource_pb2.CompareAndSetRequest(key=key, expect_absent=True, request_id=request_id),
        ),
        (
            resources.DeleteResource,
            resource_pb2.DeleteResourceRequest(key=key, allow_missing=True, request_id=request_id),
        ),
        (
            resources.Transact,
            resource_pb2.TransactRequest(
                operations=[resource_pb2.Operation(put=resource_pb2.PutOperation(key=key))],
                request_id=request_id,
            ),
        ),
    ):
        failure = expect_failure(call, request, INVALID, "INVALID_REQUEST_ID")
        assert failure.metadata == {"field": "request_id", "limit": "128"}
        assert "128" in failure.message
    assert_missing(resources, key)


def test_request_id_of_128_printable_characters_is_accepted(resources: Stub, prefix: str) -> None:
    request_id = ("!~" + uuid.uuid4().hex) * 4
    request_id = request_id[:128]
    assert len(request_id) == 128
    first = create(resources, f"{prefix}/k", b"v", request_id=request_id)
    assert create(resources, f"{prefix}/k", b"v", request_id=request_id) == first


def test_idempotency_survives_a_restart(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory().start()
    key = f"{prefix}/k"
    create_id, update_id, delete_id = rid(), rid(), rid()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        created = create(resources, key, b"v1", request_id=create_id)
        updated = update(resources, key, b"v2", expected_version=1, request_id=update_id)
        deleted = resources.DeleteResource(
            resource_pb2.DeleteResourceRequest(
                key=f"{prefix}/gone", allow_missing=True, request_id=delete_id
            ),
            timeout=10,
        )
    assert server.stop() == 0

    server.start()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        assert create(resources, key, b"v1", request_id=create_id) == created
        assert update(resources, key, b"v2", expected_version=1, request_id=update_id) == updated
        assert (
            resources.DeleteResource(
                resource_pb2.DeleteResourceRequest(
                    key=f"{prefix}/gone", allow_missing=True, request_id=delete_id
                ),
                timeout=10,
            )
            == deleted
        )
        assert get(resources, key) == updated
        expect_failure(
            resources.CreateResource,
            resource_pb2.CreateResourceRequest(key=key, value=b"different", request_id=create_id),
            INVALID,
            "REQUEST_ID_REUSED",
        )
        # No retry spent a revision.
        after = create(resources, f"{prefix}/after", b"x")
        assert after.mod_revision == updated.mod_revision + 1


# -- leases and locks: every mutation answers a retry with its first answer ----------------------


def _wait(seconds: float) -> Duration:
    duration = Duration()
    duration.FromSeconds(int(seconds))
    return duration


def _queued(locks: LockStub, name: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10).waiters != count:
        assert time.monotonic() < deadline, f"{name} never had {count} waiter(s)"
        time.sleep(0.02)


def test_retried_grant_lease_returns_the_first_lease(leases: LeaseStub) -> None:
    request = lease_pb2.GrantLeaseRequest(ttl_seconds=30, holder="h", request_id=rid())
    first = leases.GrantLease(request, timeout=10)
    assert leases.GrantLease(request, timeout=10) == first
    # One lease was granted, not two: revoking it ends the only one.
    leases.RevokeLease(lease_pb2.RevokeLeaseRequest(lease_id=first.lease_id), timeout=10)
    assert leases.GrantLease(request, timeout=10) == first


def test_retried_refresh_lease_returns_the_first_answer(leases: LeaseStub) -> None:
    lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=30), timeout=10)
    request = lease_pb2.RefreshLeaseRequest(lease_id=lease.lease_id, request_id=rid())
    first = leases.RefreshLease(request, timeout=10)
    assert first.expire_time.ToMicroseconds() >= lease.expire_time.ToMicroseconds()
    time.sleep(0.05)
    # Not extended again: the retry is the same refresh, answered as it was the first time.
    assert leases.RefreshLease(request, timeout=10) == first
    now = leases.GetLease(lease_pb2.GetLeaseRequest(lease_id=lease.lease_id), timeout=10)
    assert now.expire_time == first.expire_time


def test_retried_revoke_lease_returns_the_first_answer(
    leases: LeaseStub, resources: Stub, prefix: str
) -> None:
    lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=30), timeout=10)
    resources.CreateResource(
        resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"v", lease_id=lease.lease_id), timeout=10
    )
    request = lease_pb2.RevokeLeaseRequest(lease_id=lease.lease_id, request_id=rid())
    first = leases.RevokeLease(request, timeout=10)
    assert list(first.deleted_keys) == [f"{prefix}/k"]
    assert leases.RevokeLease(request, timeout=10) == first


def test_retried_acquire_lock_returns_the_first_answer(locks: LockStub, prefix: str) -> None:
    name = f"{prefix}/l"
    request = lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30, holder="a", request_id=rid())
    first = locks.AcquireLock(request, timeout=10)
    assert (first.held, first.holder, first.token) == (True, "a", 1)
    assert locks.AcquireLock(request, timeout=10) == first
    # Even after the lock moved on, the retry answers the first acquire and takes nothing.
    locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=first.token), timeout=10)
    other = locks.AcquireLock(lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30, holder="b"), timeout=10)
    assert locks.AcquireLock(request, timeout=10) == first
    assert locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10) == other


def test_retried_waiting_acquire_lock_returns_the_lock_it_waited_for(locks: LockStub, prefix: str) -> None:
    name = f"{prefix}/l"
    held = locks.AcquireLock(lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30, holder="a"), timeout=10)
    request = lock_pb2.AcquireLockRequest(
        name=name, ttl_seconds=30, holder="b", wait_timeout=_wait(30), request_id=rid()
    )
    waiting = locks.AcquireLock.future(request, timeout=40)
    _queued(locks, name, 1)
    locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=held.token), timeout=10)
    first = waiting.result(timeout=30)
    assert (first.holder, first.token) == ("b", held.token + 1)
    assert locks.AcquireLock(request, timeout=40) == first
    assert locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10).token == first.token


def test_retried_release_lock_returns_the_first_answer(locks: LockStub, prefix: str) -> None:
    name = f"{prefix}/l"
    held = locks.AcquireLock(lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30), timeout=10)
    request = lock_pb2.ReleaseLockRequest(name=name, token=held.token, request_id=rid())
    first = locks.ReleaseLock(request, timeout=10)
    assert (first.lock.held, first.lock.token) == (False, held.token)
    assert locks.ReleaseLock(request, timeout=10) == first
    # After someone else took the lock, the retry still answers the first release, and
    # releases nothing: the new holder keeps the lock.
    other = locks.AcquireLock(lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30), timeout=10)
    assert locks.ReleaseLock(request, timeout=10) == first
    assert locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10) == other


def _lease(leases: LeaseStub) -> str:
    lease_id: str = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=30), timeout=10).lease_id
    return lease_id


def _every_mutation(
    resources: Stub, leases: LeaseStub, locks: LockStub, prefix: str
) -> list[tuple[Callable[..., Any], Any, Any]]:
    """(call, a first request, the same request_id with another payload) for every mutation."""
    key, name, request_id = f"{prefix}/k", f"{prefix}/l", rid()
    lease_a, lease_b = _lease(leases), _lease(leases)
    create(resources, f"{prefix}/k1", b"v")
    held = locks.AcquireLock(lock_pb2.AcquireLockRequest(name=f"{prefix}/held", ttl_seconds=30), timeout=10)
    put = resource_pb2.PutOperation
    return [
        (
            resources.CreateResource,
            resource_pb2.CreateResourceRequest(key=key, value=b"v", request_id=request_id + "c"),
            resource_pb2.CreateResourceRequest(key=key, value=b"w", request_id=request_id + "c"),
        ),
        (
            resources.UpdateResource,
            resource_pb2.UpdateResourceRequest(key=f"{prefix}/k1", value=b"2", request_id=request_id + "u"),
            resource_pb2.UpdateResourceRequest(key=f"{prefix}/k1", value=b"3", request_id=request_id + "u"),
        ),
        (
            resources.CompareAndSet,
            resource_pb2.CompareAndSetRequest(
                key=f"{prefix}/k2", expect_absent=True, request_id=request_id + "s"
            ),
            resource_pb2.CompareAndSetRequest(
                key=f"{prefix}/k2", expect_absent=True, value=b"x", request_id=request_id + "s"
            ),
        ),
        (
            resources.Transact,
            resource_pb2.TransactRequest(
                operations=[resource_pb2.Operation(put=put(key=f"{prefix}/t", value=b"1"))],
                request_id=request_id + "t",
            ),
            resource_pb2.TransactRequest(
                operations=[resource_pb2.Operation(put=put(key=f"{prefix}/t", value=b"2"))],
                request_id=request_id + "t",
            ),
        ),
        (
            resources.DeleteResource,
            resource_pb2.DeleteResourceRequest(key=f"{prefix}/k1", request_id=request_id + "d"),
            resource_pb2.DeleteResourceRequest(
                key=f"{prefix}/k1", expected_version=1, request_id=request_id + "d"
            ),
        ),
        (
            leases.GrantLease,
            lease_pb2.GrantLeaseRequest(ttl_seconds=30, request_id=request_id + "g"),
            lease_pb2.GrantLeaseRequest(ttl_seconds=31, request_id=request_id + "g"),
        ),
        (
            leases.RefreshLease,
            lease_pb2.RefreshLeaseRequest(lease_id=lease_a, request_id=request_id + "r"),
            lease_pb2.RefreshLeaseRequest(lease_id=lease_b, request_id=request_id + "r"),
        ),
        (
            leases.RevokeLease,
            lease_pb2.RevokeLeaseRequest(lease_id=lease_a, request_id=request_id + "v"),
            lease_pb2.RevokeLeaseRequest(lease_id=lease_b, request_id=request_id + "v"),
        ),
        (
            locks.AcquireLock,
            lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30, request_id=request_id + "a"),
            lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30, holder="x", request_id=request_id + "a"),
        ),
        (
            locks.AcquireLock,
            lock_pb2.AcquireLockRequest(
                name=f"{prefix}/w", ttl_seconds=30, wait_timeout=_wait(5), request_id=request_id + "w"
            ),
            lock_pb2.AcquireLockRequest(
                name=f"{prefix}/w", ttl_seconds=30, wait_timeout=_wait(6), request_id=request_id + "w"
            ),
        ),
        (
            locks.ReleaseLock,
            lock_pb2.ReleaseLockRequest(name=f"{prefix}/held", token=held.token, request_id=request_id + "e"),
            lock_pb2.ReleaseLockRequest(
                name=f"{prefix}/held", token=held.token + 1, request_id=request_id + "e"
            ),
        ),
    ]


def test_every_mutation_answers_a_retry_first_and_refuses_a_reused_request_id(
    resources: Stub, leases: LeaseStub, locks: LockStub, prefix: str
) -> None:
    mutations = _every_mutation(resources, leases, locks, prefix)
    for call, request, other in mutations:
        first = call(request, timeout=20)
        assert call(request, timeout=20) == first, call
        failure = expect_failure(call, other, INVALID, "REQUEST_ID_REUSED", timeout=20)
        assert failure.metadata == {"field": "request_id", "request_id": request.request_id}
        assert call(request, timeout=20) == first, call
    assert len(mutations) == 11
