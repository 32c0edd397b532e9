"""Leases end to end: grant, keep alive, refresh, revoke, and what their end does."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc

from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.support import ServerFactory, assert_missing, expect_failure


def _grant(leases: lease_pb2_grpc.LeaseServiceStub, ttl: int, holder: str = "test") -> lease_pb2.Lease:
    lease: lease_pb2.Lease = leases.GrantLease(
        lease_pb2.GrantLeaseRequest(ttl_seconds=ttl, holder=holder), timeout=10
    )
    return lease


def test_grant_returns_an_unguessable_id_and_its_deadline(leases: lease_pb2_grpc.LeaseServiceStub) -> None:
    before = time.time()
    first, second = _grant(leases, 30, "worker-1"), _grant(leases, 30, "worker-1")
    assert len(first.lease_id) == 32 and int(first.lease_id, 16) >= 0
    assert first.lease_id != second.lease_id
    assert (first.holder, first.ttl_seconds, first.remaining_ms) == ("worker-1", 30, 30_000)
    granted = first.grant_time.ToMicroseconds() / 1e6
    assert before - 1 <= granted <= time.time() + 1
    assert first.expire_time.ToMicroseconds() - first.grant_time.ToMicroseconds() == 30_000_000


def test_get_lease_lists_its_locks_and_resources(
    leases: lease_pb2_grpc.LeaseServiceStub,
    locks: lock_pb2_grpc.LockServiceStub,
    resources: resource_pb2_grpc.ResourceServiceStub,
    prefix: str,
) -> None:
    lease = _grant(leases, 30)
    locks.AcquireLock(lock_pb2.AcquireLockRequest(name=f"{prefix}/lock", lease_id=lease.lease_id), timeout=10)
    for name in ("b", "a"):
        resources.CreateResource(
            resource_pb2.CreateResourceRequest(key=f"{prefix}/{name}", value=b"x", lease_id=lease.lease_id),
            timeout=10,
        )
    got = leases.GetLease(lease_pb2.GetLeaseRequest(lease_id=lease.lease_id), timeout=10)
    assert list(got.lock_names) == [f"{prefix}/lock"]
    assert list(got.resource_keys) == [f"{prefix}/a", f"{prefix}/b"]
    assert 28_000 < got.remaining_ms <= 30_000


def test_expiry_releases_locks_and_deletes_resources(
    leases: lease_pb2_grpc.LeaseServiceStub,
    locks: lock_pb2_grpc.LockServiceStub,
    resources: resource_pb2_grpc.ResourceServiceStub,
    prefix: str,
) -> None:
    lease = _grant(leases, 2)
    lock = locks.AcquireLock(
        lock_pb2.AcquireLockRequest(name=f"{prefix}/lock", lease_id=lease.lease_id, holder="h"), timeout=10
    )
    key = f"{prefix}/ephemeral"
    resources.CreateResource(
        resource_pb2.CreateResourceRequest(key=key, value=b"x", lease_id=lease.lease_id), timeout=10
    )
    # Nobody asks about the lease: the server ends it on its own (when, to the microsecond, is
    # tests/core/test_leases.py's, on a manual clock; a loaded machine may be late here).
    patience = time.monotonic() + 30
    while resources.ListResources(resource_pb2.ListResourcesRequest(prefix=key), timeout=10).resources:
        assert time.monotonic() < patience, "the expired lease's resource was never deleted"
        time.sleep(0.1)
    after = locks.GetLock(lock_pb2.GetLockRequest(name=f"{prefix}/lock"), timeout=10)
    assert (after.held, after.holder, after.lease_id, after.token) == (False, "", "", lock.token)
    assert_missing(resources, key)
    expect_failure(
        leases.GetLease,
        lease_pb2.GetLeaseRequest(lease_id=lease.lease_id),
        grpc.StatusCode.NOT_FOUND,
        "LEASE_NOT_FOUND",
    )


def test_keepalive_stream_answers_each_ping_with_the_moved_deadline(
    leases: lease_pb2_grpc.LeaseServiceStub,
) -> None:
    """The stream's shape on the wire; that a keep-alive gives a full TTL from now (and so keeps a
    lease past its first deadline) is tests/core/test_leases.py's, on a manual clock."""
    lease = _grant(leases, 30)

    def pings() -> Iterator[lease_pb2.KeepAliveRequest]:
        for _ in range(3):
            time.sleep(0.05)
            yield lease_pb2.KeepAliveRequest(lease_id=lease.lease_id)

    replies = list(leases.KeepAlive(pings(), timeout=20))
    assert len(replies) == 3
    assert all(r.lease_id == lease.lease_id and r.ttl_seconds == 30 for r in replies)
    deadlines = [lease.expire_time.ToMicroseconds()] + [r.expire_time.ToMicroseconds() for r in replies]
    assert deadlines == sorted(deadlines) and deadlines[-1] >= deadlines[0] + 150_000


def test_keepalive_on_a_gone_lease_ends_the_stream_with_not_found(
    leases: lease_pb2_grpc.LeaseServiceStub,
) -> None:
    lease = _grant(leases, 5)
    leases.RevokeLease(lease_pb2.RevokeLeaseRequest(lease_id=lease.lease_id), timeout=10)
    stream = leases.KeepAlive(iter([lease_pb2.KeepAliveRequest(lease_id=lease.lease_id)]), timeout=10)
    try:
        list(stream)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("KeepAlive on a revoked lease must fail")


def test_refresh_extends_and_a_gone_lease_is_not_found(leases: lease_pb2_grpc.LeaseServiceStub) -> None:
    """The wire's answers; that an expired lease cannot be revived is tests/core/test_leases.py's."""
    lease = _grant(leases, 30)
    time.sleep(0.2)
    refreshed = leases.RefreshLease(lease_pb2.RefreshLeaseRequest(lease_id=lease.lease_id), timeout=10)
    assert refreshed.expire_time.ToMicroseconds() >= lease.expire_time.ToMicroseconds() + 200_000
    leases.RevokeLease(lease_pb2.RevokeLeaseRequest(lease_id=lease.lease_id), timeout=10)
    expect_failure(
        leases.RefreshLease,
        lease_pb2.RefreshLeaseRequest(lease_id=lease.lease_id),
        grpc.StatusCode.NOT_FOUND,
        "LEASE_NOT_FOUND",
    )


def test_revoke_reports_what_it_released_and_deleted(
    leases: lease_pb2_grpc.LeaseServiceStub,
    locks: lock_pb2_grpc.LockServiceStub,
    resources: resource_pb2_grpc.ResourceServiceStub,
    prefix: str,
) -> None:
    lease = _grant(leases, 30)
    locks.AcquireLock(lock_pb2.AcquireLockRequest(name=f"{prefix}/l", lease_id=lease.lease_id), timeout=10)
    created = resources.CreateResource(
        resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"x", lease_id=lease.lease_id), timeout=10
    )
    revoked = leases.RevokeLease(
        lease_pb2.RevokeLeaseRequest(lease_id=lease.lease_id, request_id=f"{prefix}-revoke"), timeout=10
    )
    assert list(revoked.released_locks) == [f"{prefix}/l"]
    assert list(revoked.deleted_keys) == [f"{prefix}/k"]
    assert revoked.revision == created.mod_revision + 1
    # The retry with the same request id gets the first answer, not NOT_FOUND.
    again = leases.RevokeLease(
        lease_pb2.RevokeLeaseRequest(lease_id=lease.lease_id, request_id=f"{prefix}-revoke"), timeout=10
    )
    assert again == revoked
    # A clean revocation applies no lock-delay: the lock is free at once.
    lock = locks.GetLock(lock_pb2.GetLockRequest(name=f"{prefix}/l"), timeout=10)
    assert not lock.held and not lock.HasField("available_time")


def test_bad_ttls_and_ids_are_invalid_argument(leases: lease_pb2_grpc.LeaseServiceStub) -> None:
    for ttl in (0, -5, 86_401):
        failure = expect_failure(
            leases.GrantLease,
            lease_pb2.GrantLeaseRequest(ttl_seconds=ttl),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_TTL",
        )
        assert failure.message == f"ttl_seconds is {ttl}; it must be between 1 and 86400 seconds"
    expect_failure(
        leases.GetLease,
        lease_pb2.GetLeaseRequest(lease_id="not-a-lease"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    expect_failure(
        leases.GetLease,
        lease_pb2.GetLeaseRequest(lease_id="0" * 32),
        grpc.StatusCode.NOT_FOUND,
        "LEASE_NOT_FOUND",
    )


def test_resources_cannot_attach_to_a_missing_lease(
    resources: resource_pb2_grpc.ResourceServiceStub, prefix: str
) -> None:
    expect_failure(
        resources.CreateResource,
        resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"x", lease_id="f" * 32),
        grpc.StatusCode.NOT_FOUND,
        "LEASE_NOT_FOUND",
    )
    assert_missing(resources, f"{prefix}/k")


def test_a_lease_expires_at_its_stored_deadline_across_a_crash(server_factory: ServerFactory) -> None:
    """A crash neither drops a lease nor moves its deadline. Two leases, so that no step depends
    on how long the restart takes: a long one is still there afterwards with its deadline
    unchanged, and a short one is gone once its stored deadline has passed (not restarted with
    the server)."""
    server: ServerProcess = server_factory().start()
    with grpc.insecure_channel(server.address) as channel:
        stub = lease_pb2_grpc.LeaseServiceStub(channel)
        kept, short = _grant(stub, 600), _grant(stub, 1)
    server.kill9()
    server.start()
    with grpc.insecure_channel(server.address) as channel:
        stub = lease_pb2_grpc.LeaseServiceStub(channel)
        got = stub.GetLease(lease_pb2.GetLeaseRequest(lease_id=kept.lease_id), timeout=10)
        assert (got.expire_time, got.ttl_seconds) == (kept.expire_time, 600)
        # The short lease keeps its stored deadline while it lasts, then ends: polled, as the
        # server's reading of the database clock may lag the test's by a loaded round trip.
        give_up = short.expire_time.ToMicroseconds() / 1e6 + 30
        while True:
            try:
                got = stub.GetLease(lease_pb2.GetLeaseRequest(lease_id=short.lease_id), timeout=10)
            except grpc.RpcError:
                break
            assert got.expire_time == short.expire_time
            assert time.time() < give_up, "the lease outlived its stored deadline by 30 s"
            time.sleep(0.05)
        expect_failure(
            stub.GetLease,
            lease_pb2.GetLeaseRequest(lease_id=short.lease_id),
            grpc.StatusCode.NOT_FOUND,
            "LEASE_NOT_FOUND",
        )


def test_max_leases_is_resource_exhausted_until_one_ends(server_factory: ServerFactory, prefix: str) -> None:
    server: ServerProcess = server_factory(["--max-leases", "2"]).start()
    with grpc.insecure_channel(server.address) as channel:
        stub = lease_pb2_grpc.LeaseServiceStub(channel)
        first, _ = _grant(stub, 30), _grant(stub, 30)
        failure = expect_failure(
            stub.GrantLease,
            lease_pb2.GrantLeaseRequest(ttl_seconds=30),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "LIMIT_EXCEEDED",
        )
        assert failure.metadata == {"limit": "2", "quota": "leases"}
        # A lock that would create its own lease counts too.
        expect_failure(
            lock_pb2_grpc.LockServiceStub(channel).AcquireLock,
            lock_pb2.AcquireLockRequest(name=f"{prefix}/l", ttl_seconds=30),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "LIMIT_EXCEEDED",
        )
        stub.RevokeLease(lease_pb2.RevokeLeaseRequest(lease_id=first.lease_id), timeout=10)
        assert _grant(stub, 30).ttl_seconds == 30


def test_a_queued_waiter_without_a_lease_holds_its_place_under_max_leases(
    server_factory: ServerFactory, prefix: str
) -> None:
    """The lease a waiter gets at the hand-over is counted when it queues, so the limit holds."""
    server: ServerProcess = server_factory(["--max-leases", "2"]).start()
    name = f"{prefix}/l"
    with grpc.insecure_channel(server.address) as channel:
        leases, locks = lease_pb2_grpc.LeaseServiceStub(channel), lock_pb2_grpc.LockServiceStub(channel)
        first = locks.AcquireLock(lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30), timeout=10)
        waiting = lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30)
        waiting.wait_timeout.FromSeconds(20)
        queued = locks.AcquireLock.future(waiting, timeout=25)
        for _ in range(500):  # until the waiter is queued
            if locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=5).waiters:
                break
            time.sleep(0.01)
        failure = expect_failure(
            leases.GrantLease,
            lease_pb2.GrantLeaseRequest(ttl_seconds=30),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "LIMIT_EXCEEDED",
        )
        assert failure.message == (
            "the store already holds 1 live leases and 1 promised to queued waiters, the limit; "
            "revoke leases you no longer need"
        )
        expect_failure(locks.AcquireLock, waiting, grpc.StatusCode.RESOURCE_EXHAUSTED, "LIMIT_EXCEEDED")
        locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=first.token), timeout=10)
        second = queued.result(timeout=10)
        assert (second.token, second.held) == (2, True)
        # The first lock's lease ended with it; the waiter's took the promised place.
        assert _grant(leases, 30).ttl_seconds == 30
        expect_failure(
            leases.GrantLease,
            lease_pb2.GrantLeaseRequest(ttl_seconds=30),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "LIMIT_EXCEEDED",
        )
