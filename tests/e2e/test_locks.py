"""Locks end to end: mutual exclusion, FIFO hand-over, conflicts with details, lock-delay."""

from __future__ import annotations

import threading
import time

import grpc
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.support import ServerFactory, expect_failure


def _seconds(value: float) -> Duration:
    duration = Duration()
    duration.FromMicroseconds(round(value * 1_000_000))
    return duration


def _acquire(
    locks: lock_pb2_grpc.LockServiceStub, name: str, *, ttl: int = 10, wait: float = 0.0, holder: str = ""
) -> lock_pb2.Lock:
    request = lock_pb2.AcquireLockRequest(name=name, ttl_seconds=ttl, holder=holder)
    if wait:
        request.wait_timeout.CopyFrom(_seconds(wait))
    lock: lock_pb2.Lock = locks.AcquireLock(request, timeout=wait + 10)
    return lock


def _release(locks: lock_pb2_grpc.LockServiceStub, name: str, token: int) -> lock_pb2.ReleaseLockResponse:
    response: lock_pb2.ReleaseLockResponse = locks.ReleaseLock(
        lock_pb2.ReleaseLockRequest(name=name, token=token), timeout=10
    )
    return response


def _wait_for_waiters(locks: lock_pb2_grpc.LockServiceStub, name: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10).waiters == count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{name} never had {count} waiters")


def test_32_contenders_never_overlap_and_every_acquire_is_matched(server: ServerProcess, prefix: str) -> None:
    name = f"{prefix}/hot"
    inside = 0
    overlaps = 0
    tokens: list[int] = []
    guard = threading.Lock()
    errors: list[BaseException] = []

    def contender(index: int) -> None:
        nonlocal inside, overlaps
        with grpc.insecure_channel(server.address) as channel:
            stub = lock_pb2_grpc.LockServiceStub(channel)
            try:
                for _ in range(3):
                    lock = _acquire(stub, name, wait=60, holder=f"c{index}")
                    with guard:
                        inside += 1
                        overlaps += inside > 1
                        tokens.append(lock.token)
                    time.sleep(0.001)
                    with guard:
                        inside -= 1
                    released = _release(stub, name, lock.token)
                    assert released.lock.token >= lock.token
            except BaseException as error:  # reported by the main thread
                errors.append(error)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert overlaps == 0
    assert sorted(tokens) == list(range(1, 97)), "every acquire got the next token, once"
    with grpc.insecure_channel(server.address) as channel:
        final = lock_pb2_grpc.LockServiceStub(channel).GetLock(lock_pb2.GetLockRequest(name=name), timeout=10)
    assert (final.held, final.token, final.waiters) == (False, 96, 0)


def test_waiters_are_served_first_come_first_served(
    server: ServerProcess, locks: lock_pb2_grpc.LockServiceStub, prefix: str
) -> None:
    name = f"{prefix}/fifo"
    first = _acquire(locks, name, holder="owner")
    order: list[str] = []
    done = threading.Lock()

    def waiter(label: str) -> None:
        with grpc.insecure_channel(server.address) as channel:
            stub = lock_pb2_grpc.LockServiceStub(channel)
            lock = _acquire(stub, name, wait=30, holder=label)
            with done:
                order.append(label)
            _release(stub, name, lock.token)

    threads = []
    for i in range(6):
        thread = threading.Thread(target=waiter, args=(f"w{i}",))
        thread.start()
        threads.append(thread)
        _wait_for_waiters(locks, name, i + 1)
    released = _release(locks, name, first.token)
    for thread in threads:
        thread.join(timeout=30)
    assert order == [f"w{i}" for i in range(6)]
    # The release handed the lock straight to the first waiter.
    assert released.lock.held and released.lock.holder == "w0" and released.lock.token == first.token + 1


def test_a_held_lock_answers_lock_held_with_the_current_holder(
    locks: lock_pb2_grpc.LockServiceStub, prefix: str
) -> None:
    name = f"{prefix}/busy"
    held = _acquire(locks, name, ttl=30, holder="owner-a")
    failure = expect_failure(
        locks.AcquireLock,
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=5, holder="b"),
        grpc.StatusCode.ABORTED,
        "LOCK_HELD",
    )
    assert failure.message == f"lock {name} is held by owner-a (token {held.token})"
    assert failure.metadata == {"name": name, "token": str(held.token), "waiters": "0"}
    detail = failure.conflict
    assert detail is not None
    assert (detail.key, detail.holder, detail.current_token, detail.lease_id) == (
        name,
        "owner-a",
        held.token,
        held.lease_id,
    )
    assert detail.expire_time == held.expire_time


def test_a_wait_that_times_out_is_lock_held_and_leaves_the_queue(
    locks: lock_pb2_grpc.LockServiceStub, prefix: str
) -> None:
    name = f"{prefix}/timeout"
    held = _acquire(locks, name, holder="owner")
    started = time.monotonic()
    request = lock_pb2.AcquireLockRequest(name=name, ttl_seconds=5, holder="late", wait_timeout=_seconds(0.3))
    failure = expect_failure(locks.AcquireLock, request, grpc.StatusCode.ABORTED, "LOCK_HELD")
    assert 0.3 <= time.monotonic() - started < 2.0
    assert failure.conflict is not None and failure.conflict.current_token == held.token
    assert locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10).waiters == 0


def test_a_cancelled_waiter_leaves_the_queue(locks: lock_pb2_grpc.LockServiceStub, prefix: str) -> None:
    name = f"{prefix}/cancel"
    held = _acquire(locks, name, holder="owner")
    future = locks.AcquireLock.future(
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=5, holder="gone", wait_timeout=_seconds(30)),
        timeout=40,
    )
    _wait_for_waiters(locks, name, 1)
    future.cancel()
    _wait_for_waiters(locks, name, 0)
    released = _release(locks, name, held.token)
    assert (released.lock.held, released.lock.token) == (False, held.token)


def test_a_caller_deadline_ends_the_wait(locks: lock_pb2_grpc.LockServiceStub, prefix: str) -> None:
    name = f"{prefix}/deadline"
    _acquire(locks, name, holder="owner")
    request = lock_pb2.AcquireLockRequest(name=name, ttl_seconds=5, wait_timeout=_seconds(30))
    try:
        locks.AcquireLock(request, timeout=0.3)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        raise AssertionError("the wait must end at the caller's deadline")
    _wait_for_waiters(locks, name, 0)


def test_release_with_a_stale_token_is_lock_not_held(
    locks: lock_pb2_grpc.LockServiceStub, prefix: str
) -> None:
    name = f"{prefix}/stale"
    first = _acquire(locks, name, holder="a")
    _release(locks, name, first.token)
    second = _acquire(locks, name, holder="b")
    failure = expect_failure(
        locks.ReleaseLock,
        lock_pb2.ReleaseLockRequest(name=name, token=first.token),
        grpc.StatusCode.ABORTED,
        "LOCK_NOT_HELD",
    )
    assert failure.message == f"token {first.token} does not hold lock {name}; token {second.token} does"
    assert failure.conflict is not None and failure.conflict.holder == "b"
    assert failure.conflict.current_token == second.token
    expect_failure(
        locks.ReleaseLock,
        lock_pb2.ReleaseLockRequest(name=f"{prefix}/never", token=1),
        grpc.StatusCode.NOT_FOUND,
        "LOCK_NOT_FOUND",
    )
    expect_failure(
        locks.GetLock,
        lock_pb2.GetLockRequest(name=f"{prefix}/never"),
        grpc.StatusCode.NOT_FOUND,
        "LOCK_NOT_FOUND",
    )


def test_a_lease_granted_for_a_lock_ends_with_its_release(
    locks: lock_pb2_grpc.LockServiceStub, leases: lease_pb2_grpc.LeaseServiceStub, prefix: str
) -> None:
    lock = _acquire(locks, f"{prefix}/own", holder="x")
    assert leases.GetLease(lease_pb2.GetLeaseRequest(lease_id=lock.lease_id), timeout=10).holder == "x"
    _release(locks, f"{prefix}/own", lock.token)
    expect_failure(
        leases.GetLease,
        lease_pb2.GetLeaseRequest(lease_id=lock.lease_id),
        grpc.StatusCode.NOT_FOUND,
        "LEASE_NOT_FOUND",
    )


def test_acquiring_again_under_the_same_lease_is_a_no_op(
    locks: lock_pb2_grpc.LockServiceStub, leases: lease_pb2_grpc.LeaseServiceStub, prefix: str
) -> None:
    lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=30), timeout=10)
    request = lock_pb2.AcquireLockRequest(name=f"{prefix}/re", lease_id=lease.lease_id)
    first = locks.AcquireLock(request, timeout=10)
    second = locks.AcquireLock(request, timeout=10)
    assert (second.held, second.token, second.lease_id) == (True, first.token, lease.lease_id)


def test_lock_delay_holds_the_lock_after_an_expiry_but_not_after_a_release(
    locks: lock_pb2_grpc.LockServiceStub, prefix: str
) -> None:
    name = f"{prefix}/delay"
    request = lock_pb2.AcquireLockRequest(name=name, ttl_seconds=1, holder="paused", lock_delay=_seconds(1.5))
    first = locks.AcquireLock(request, timeout=10)
    time.sleep(1.3)  # the lease expires at 1 s; the delay runs until about 2.5 s
    during = locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10)
    assert not during.held and during.HasField("available_time")
    failure = expect_failure(
        locks.AcquireLock,
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=5),
        grpc.StatusCode.ABORTED,
        "LOCK_HELD",
    )
    assert "lock-delay" in failure.message
    # A waiter queued during the delay gets the lock when it ends, without polling.
    started = time.monotonic()
    after = _acquire(locks, name, wait=5, holder="next")
    assert 0.5 < time.monotonic() - started < 2.0
    assert after.token == first.token + 1
    # A clean release applies no delay.
    _release(locks, name, after.token)
    assert _acquire(locks, name, holder="immediate").token == first.token + 2


def test_fencing_tokens_keep_increasing_across_a_kill_9(server_factory: ServerFactory, prefix: str) -> None:
    server: ServerProcess = server_factory().start()
    name = f"{prefix}/tokens"
    with grpc.insecure_channel(server.address) as channel:
        stub = lock_pb2_grpc.LockServiceStub(channel)
        for expected in (1, 2, 3):
            lock = _acquire(stub, name)
            assert lock.token == expected
            _release(stub, name, lock.token)
        held = _acquire(stub, name, ttl=1)
        assert held.token == 4
    server.kill9()
    server.start()
    with grpc.insecure_channel(server.address) as channel:
        stub = lock_pb2_grpc.LockServiceStub(channel)
        after = _acquire(stub, name, wait=5)
        assert after.token == 5


def test_bad_lock_requests_are_invalid_argument(locks: lock_pb2_grpc.LockServiceStub, prefix: str) -> None:
    cases = [
        (lock_pb2.AcquireLockRequest(name="bad name", ttl_seconds=5), "INVALID_KEY"),
        (lock_pb2.AcquireLockRequest(name=f"{prefix}/x"), "INVALID_TTL"),
        (lock_pb2.AcquireLockRequest(name=f"{prefix}/x", lease_id="zz"), "INVALID_ARGUMENT"),
        (
            lock_pb2.AcquireLockRequest(name=f"{prefix}/x", ttl_seconds=5, wait_timeout=_seconds(-1)),
            "INVALID_ARGUMENT",
        ),
        (
            lock_pb2.AcquireLockRequest(name=f"{prefix}/x", ttl_seconds=5, lock_delay=_seconds(301)),
            "INVALID_ARGUMENT",
        ),
    ]
    for request, reason in cases:
        expect_failure(locks.AcquireLock, request, grpc.StatusCode.INVALID_ARGUMENT, reason)
    expect_failure(
        locks.ReleaseLock,
        lock_pb2.ReleaseLockRequest(name=f"{prefix}/x", token=0),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    expect_failure(
        locks.GetLock,
        lock_pb2.GetLockRequest(name=f"{prefix}/x"),
        grpc.StatusCode.NOT_FOUND,
        "LOCK_NOT_FOUND",
    )
