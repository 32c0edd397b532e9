"""A request_id names one operation across replicas, restarts and retries, waiting acquires included.

A caller queued for a lock whose server dies resends the same request (same request_id) to
another replica, or to the restarted server. The retry takes over the queued attempt (its place
in the queue, its grant) instead of queueing a second time: the lock reaches the live caller, a
dead attempt is never granted, and the request has exactly one answer.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.ops_support import bearer, write_tokens
from tests.e2e.support import ServerFactory, expect_failure

LockStub = lock_pb2_grpc.LockServiceStub
postgres_only = pytest.mark.backend_specific(
    "postgres", reason="replicas share a PostgreSQL database; SQLite serves one process per file"
)
# Server-side failures that must never appear: the second answer a dead attempt's grant used to
# cause was retried as a transient conflict until the store gave up.
_NEVER_LOGGED = ("STORE_UNAVAILABLE", "INTERNAL", "UniqueViolation", "IntegrityError")


def _seconds(value: int) -> Duration:
    duration = Duration()
    duration.FromSeconds(value)
    return duration


@contextmanager
def _locks(server: ServerProcess) -> Iterator[LockStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield LockStub(channel)


Metadata = tuple[tuple[str, str], ...]


def _waiters(locks: LockStub, name: str, metadata: Metadata = ()) -> int:
    count: int = locks.GetLock(lock_pb2.GetLockRequest(name=name), metadata=metadata, timeout=10).waiters
    return count


def _until_queued(locks: LockStub, name: str, count: int, metadata: Metadata = ()) -> None:
    deadline = time.monotonic() + 20
    while _waiters(locks, name, metadata) != count:
        assert time.monotonic() < deadline, f"{name} never had {count} waiter(s)"
        time.sleep(0.02)


def _settle() -> None:
    """Time for a resent request to reach the queue. Nothing asserted depends on it: whether the
    retry arrives before or after the release, it must get the same lock; it only lets the old
    failure (a second waiter) show."""
    time.sleep(2)


def _waiting_request(name: str, *, ttl: int = 30, wait: int = 30) -> lock_pb2.AcquireLockRequest:
    return lock_pb2.AcquireLockRequest(
        name=name, ttl_seconds=ttl, holder="c", wait_timeout=_seconds(wait), request_id=str(uuid.uuid4())
    )


def _assert_clean_logs(*servers: ServerProcess) -> None:
    for server in servers:
        logs = server.logs()
        for text in _NEVER_LOGGED:
            assert text not in logs, f"{text} in the logs of {server.address}"


def _queue_then_crash(
    dead: ServerProcess, live: LockStub, name: str, request: lock_pb2.AcquireLockRequest
) -> lock_pb2.Lock:
    """The lock held on `live`'s replica, `request` queued on `dead`, then `dead` killed -9."""
    held: lock_pb2.Lock = live.AcquireLock(
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=60, holder="h"), timeout=10
    )
    with _locks(dead) as doomed:
        attempt = doomed.AcquireLock.future(request, timeout=60)
        _until_queued(live, name, 1)
        dead.kill9()
        with pytest.raises(grpc.RpcError):
            attempt.result(timeout=30)
    return held


def _resend_then_release(
    locks: LockStub, request: lock_pb2.AcquireLockRequest, held: lock_pb2.Lock
) -> lock_pb2.Lock:
    """Resends `request`, whose first attempt is queued behind `held`, then releases `held`:
    the retry takes over the attempt's place (one waiter, not two) and gets the lock."""
    name = request.name
    retry = locks.AcquireLock.future(request, timeout=60)
    _settle()
    assert _waiters(locks, name) == 1
    locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=held.token), timeout=10)
    granted: lock_pb2.Lock = retry.result(timeout=30)
    assert (granted.held, granted.holder, granted.token) == (True, "c", held.token + 1)
    current = locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10)
    assert (current.holder, current.token, current.waiters) == ("c", granted.token, 0)
    # One request, one answer, however often it is sent again.
    assert locks.AcquireLock(request, timeout=60) == granted
    return granted


def _replicas(server_factory: ServerFactory) -> tuple[ServerProcess, ServerProcess]:
    first = server_factory(name="replica").start()
    return first, server_factory(name="replica", store_url=first.store_url).start()


@postgres_only
def test_a_waiting_acquire_resent_to_another_replica_after_a_crash_gets_the_lock(
    server_factory: ServerFactory, prefix: str
) -> None:
    doomed, survivor = _replicas(server_factory)
    name = f"{prefix}/l"
    request = _waiting_request(name)
    with _locks(survivor) as locks:
        held = _queue_then_crash(doomed, locks, name, request)
        granted = _resend_then_release(locks, request, held)
        release = lock_pb2.ReleaseLockRequest(name=name, token=granted.token, request_id=str(uuid.uuid4()))
        released = locks.ReleaseLock(release, timeout=10)
        assert locks.ReleaseLock(release, timeout=10) == released
        assert not locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10).held
    _assert_clean_logs(survivor)


@postgres_only
def test_a_waiting_acquire_resent_after_its_dead_attempt_was_granted_gets_that_grant(
    server_factory: ServerFactory, prefix: str
) -> None:
    """The lock reached the dead replica's attempt before the caller resent: the resend gets
    that grant at once (the lease made for it is the caller's), not a wait and LOCK_HELD."""
    doomed, survivor = _replicas(server_factory)
    name = f"{prefix}/l"
    request = _waiting_request(name)
    with _locks(survivor) as locks:
        held = _queue_then_crash(doomed, locks, name, request)
        locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=held.token), timeout=10)
        current = locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10)
        assert (current.holder, current.token, current.waiters) == ("c", held.token + 1, 0)
        started = time.monotonic()
        granted = locks.AcquireLock(request, timeout=60)
        assert time.monotonic() - started < request.wait_timeout.seconds
        assert (granted.held, granted.holder, granted.token, granted.lease_id) == (
            True,
            "c",
            current.token,
            current.lease_id,
        )
        released = locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=granted.token), timeout=10)
        assert not released.lock.held
    _assert_clean_logs(survivor)


@postgres_only
def test_an_unrelated_lease_expires_on_time_while_a_resent_acquire_waits(
    server_factory: ServerFactory, prefix: str
) -> None:
    """The lock goes to the resent request with a short lease that nobody keeps alive: its
    expiry, and the other leases due with it, are ended on time (no write stalls)."""
    doomed, survivor = _replicas(server_factory)
    name = f"{prefix}/l"
    request = _waiting_request(name, ttl=2, wait=40)
    with _locks(survivor) as locks, grpc.insecure_channel(survivor.address) as channel:
        leases = lease_pb2_grpc.LeaseServiceStub(channel)
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        held = _queue_then_crash(doomed, locks, name, request)
        retry = locks.AcquireLock.future(request, timeout=60)
        _settle()
        locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=held.token), timeout=10)
        other = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=3), timeout=10)
        resources.CreateResource(
            resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"v", lease_id=other.lease_id),
            timeout=10,
        )
        # Ended, not just past its deadline: its resource is deleted (an EXPIRE).
        deadline = time.monotonic() + 3 + 10
        while True:
            try:
                resources.GetResource(resource_pb2.GetResourceRequest(key=f"{prefix}/k"), timeout=10)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
                break
            assert time.monotonic() < deadline, "the unrelated lease outlived its deadline by 10 s"
            time.sleep(0.1)
        expect_failure(
            leases.GetLease,
            lease_pb2.GetLeaseRequest(lease_id=other.lease_id),
            grpc.StatusCode.NOT_FOUND,
            "LEASE_NOT_FOUND",
        )
        granted = retry.result(timeout=30)
        assert (granted.holder, granted.token) == ("c", held.token + 1)
        assert locks.AcquireLock(request, timeout=60) == granted
        # The lease made for the resent request ran out too, and freed the lock.
        deadline = time.monotonic() + 20
        while locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10).held:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    _assert_clean_logs(survivor)


def test_a_waiting_acquire_resent_after_a_restart_gets_the_lock(
    server_factory: ServerFactory, prefix: str
) -> None:
    """On SQLite the queue dies with the process and the retry queues afresh; on PostgreSQL the
    dead attempt's row remains and the retry takes it over. Either way: one waiter, one answer."""
    server = server_factory().start()
    name = f"{prefix}/l"
    request = _waiting_request(name)
    with _locks(server) as locks:
        held: lock_pb2.Lock = locks.AcquireLock(
            lock_pb2.AcquireLockRequest(name=name, ttl_seconds=60, holder="h"), timeout=10
        )
        attempt = locks.AcquireLock.future(request, timeout=60)
        _until_queued(locks, name, 1)
    server.kill9()
    with pytest.raises(grpc.RpcError):
        attempt.result(timeout=30)
    server.start()
    with _locks(server) as locks:
        _resend_then_release(locks, request, held)
    _assert_clean_logs(server)


def test_concurrent_attempts_of_one_waiting_acquire_queue_once_and_get_one_answer(
    server: ServerProcess, prefix: str
) -> None:
    """Each later attempt takes over the queued one; the attempts taken over answer at their
    own timeout, with the one answer the request got."""
    name = f"{prefix}/l"
    request = _waiting_request(name, wait=6)
    with _locks(server) as locks:
        held = locks.AcquireLock(
            lock_pb2.AcquireLockRequest(name=name, ttl_seconds=60, holder="h"), timeout=10
        )
        with ThreadPoolExecutor(max_workers=6) as pool:
            attempts = [pool.submit(locks.AcquireLock, request, timeout=60) for _ in range(6)]
            _until_queued(locks, name, 1)
            _settle()
            assert _waiters(locks, name) == 1
            locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=held.token), timeout=10)
            answers = [attempt.result(timeout=60) for attempt in attempts]
        assert (answers[0].holder, answers[0].token) == ("c", held.token + 1)
        assert all(answer == answers[0] for answer in answers)
        assert locks.AcquireLock(request, timeout=60) == answers[0]
        current = locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10)
        assert (current.holder, current.token, current.waiters) == ("c", held.token + 1, 0)


# -- request ids belong to the caller's identity -------------------------------------------------

_TOKENS = {name: secrets.token_hex(24) for name in ("alice", "bob")}
_POLICY = """
[[grant]]
identity = "*"
prefix = "shared/"
rights = ["read", "write", "lock"]
"""


@pytest.fixture
def auth_server(server_factory: ServerFactory) -> ServerProcess:
    server = server_factory(name="auth")
    policy = server.workdir / "policy.toml"
    policy.write_text(_POLICY)
    tokens = write_tokens(server.workdir, _TOKENS)
    server.extra_args += ["--auth-tokens", str(tokens), "--auth-policy", str(policy)]
    return server.start()


def test_one_identity_cannot_see_or_claim_anothers_request_ids(auth_server: ServerProcess) -> None:
    alice, bob = bearer(_TOKENS["alice"]), bearer(_TOKENS["bob"])
    request_id = str(uuid.uuid4())
    with grpc.insecure_channel(auth_server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        locks = LockStub(channel)
        mine = resource_pb2.CreateResourceRequest(key="shared/a", value=b"a", request_id=request_id)
        first = resources.CreateResource(mine, metadata=alice, timeout=10)
        # Alice's exact request, sent by bob, is bob's: not alice's answer but the conflict it is.
        expect_failure(
            resources.CreateResource, mine, grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_EXISTS", metadata=bob
        )
        # Bob's own request with the same id is his own, not "reused".
        theirs = resource_pb2.CreateResourceRequest(key="shared/b", value=b"b", request_id=request_id)
        bobs = resources.CreateResource(theirs, metadata=bob, timeout=10)
        assert (bobs.key, bobs.version) == ("shared/b", 1)
        assert resources.CreateResource(theirs, metadata=bob, timeout=10) == bobs
        assert resources.CreateResource(mine, metadata=alice, timeout=10) == first

        # Two identities queueing with one request_id are two waiters: neither takes over the other.
        name = "shared/l"
        held = locks.AcquireLock(
            lock_pb2.AcquireLockRequest(name=name, ttl_seconds=60), metadata=alice, timeout=10
        )
        request = _waiting_request(name)
        alices = locks.AcquireLock.future(request, metadata=alice, timeout=60)
        _until_queued(locks, name, 1, alice)
        bobs_wait = locks.AcquireLock.future(request, metadata=bob, timeout=60)
        _until_queued(locks, name, 2, alice)
        locks.ReleaseLock(
            lock_pb2.ReleaseLockRequest(name=name, token=held.token), metadata=alice, timeout=10
        )
        alices_lock = alices.result(timeout=30)
        assert alices_lock.token == held.token + 1
        locks.ReleaseLock(
            lock_pb2.ReleaseLockRequest(name=name, token=alices_lock.token), metadata=alice, timeout=10
        )
        bobs_lock = bobs_wait.result(timeout=30)
        assert bobs_lock.token == alices_lock.token + 1
        assert locks.AcquireLock(request, metadata=alice, timeout=60) == alices_lock
        assert locks.AcquireLock(request, metadata=bob, timeout=60) == bobs_lock
