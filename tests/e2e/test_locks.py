"""Locks end to end: what needs a process. Mutual exclusion among many clients, how a conflict,
a caller's deadline and a lock-delay reach the wire, tokens across a kill -9, bad requests.

The rules themselves (FIFO hand-over, waits that time out or are cancelled, stale tokens, the
lease made for a lock, re-acquiring, the lock-delay's length) are tested on the memory store
with a manual clock in tests/core/test_locks.py."""

from __future__ import annotations

import threading
import time

import grpc
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import lock_pb2, lock_pb2_grpc
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


def test_a_lock_in_its_lock_delay_shows_when_it_is_available_and_refuses_with_the_reason(
    locks: lock_pb2_grpc.LockServiceStub, prefix: str
) -> None:
    """How the delay reaches the wire (GetLock's available_time, the LOCK_HELD message); its
    rules (length, waiters served when it ends, none after a release) are tests/core/test_locks.py's."""
    name = f"{prefix}/delay"
    request = lock_pb2.AcquireLockRequest(name=name, ttl_seconds=1, holder="paused", lock_delay=_seconds(60))
    first = locks.AcquireLock(request, timeout=10)
    deadline = time.monotonic() + 30
    while (during := locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10)).held:
        assert time.monotonic() < deadline, "the holder's 1 s lease never expired"
        time.sleep(0.1)
    assert during.HasField("available_time") and during.token == first.token
    assert during.available_time.ToMicroseconds() > first.expire_time.ToMicroseconds()
    failure = expect_failure(
        locks.AcquireLock,
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=5),
        grpc.StatusCode.ABORTED,
        "LOCK_HELD",
    )
    assert failure.message == f"lock {name} is in its lock-delay after its holder's lease expired"


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
