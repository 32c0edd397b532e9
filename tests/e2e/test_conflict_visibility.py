"""A conflict shows the state it ran into only to a caller that may read it, over gRPC and HTTP.

A write-only or lock-only identity learns that its request conflicted (code, reason, key, what
it expected) and nothing of the key's or lock's state; a reader keeps the whole detail. A fence
names a lock, and using it needs the lock right on that name: without it the write is
PERMISSION_DENIED before any state is looked at, so the answer is no oracle for a foreign lock.
One server per backend for the module; each test writes under its own prefix.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import errors_pb2, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.ops_support import PolicyServers, bearer
from tests.e2e.support import assert_conflict_is, conflict_of, expect_failure
from tests.http.support import assert_problem, gateway

TOKENS = {name: secrets.token_hex(24) for name in ("owner", "writer", "locker", "fencer", "reader")}
POLICY = """
[[grant]]
identity = "owner"
prefix = ""
rights = ["read", "write", "lock"]

[[grant]]
identity = "writer"
prefix = "a/"
rights = ["write"]

[[grant]]
identity = "locker"
prefix = "a/"
rights = ["lock"]

[[grant]]
identity = "fencer"
prefix = "a/"
rights = ["write", "lock"]

[[grant]]
identity = "reader"
prefix = "a/"
rights = ["read", "write", "lock"]
"""
WITHHELD = "; its current state is withheld: this identity may not read it"
ABORTED = grpc.StatusCode.ABORTED
DENIED = grpc.StatusCode.PERMISSION_DENIED

_servers = PolicyServers("visibility", POLICY, TOKENS)


@pytest.fixture(scope="module", autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    _servers.stop()


@pytest.fixture
def policy_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """A server per backend with bearer tokens and the policy above, shared by the module."""
    return _servers.get(backend, tmp_path_factory)


@pytest.fixture
def channel(policy_server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(policy_server.address) as ch:
        yield ch


def as_(identity: str) -> tuple[tuple[str, str]]:
    return bearer(TOKENS[identity])


def assert_withheld(
    detail: errors_pb2.ConflictDetail, key: str, expected: str, compare_index: int = 0
) -> None:
    """The detail names the key and echoes the request, and says nothing of the state."""
    assert detail == errors_pb2.ConflictDetail(
        key=key, expected=expected, compare_index=compare_index, state_withheld=True
    )


def _owned_doc(resources: resource_pb2_grpc.ResourceServiceStub, key: str) -> resource_pb2.Resource:
    created: resource_pb2.Resource = resources.CreateResource(
        resource_pb2.CreateResourceRequest(key=key, value=b"secret", content_type="text/plain"),
        metadata=as_("owner"),
        timeout=10,
    )
    return created


def _owned_lock(locks: lock_pb2_grpc.LockServiceStub, name: str) -> lock_pb2.Lock:
    lock: lock_pb2.Lock = locks.AcquireLock(
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=60, holder="owner-job"),
        metadata=as_("owner"),
        timeout=10,
    )
    return lock


def _write_conflicts(key: str) -> list[tuple[str, Any, grpc.StatusCode, str, str, str]]:
    """(method, request, code, reason, expected, message without the withheld note) for each
    write that conflicts with the existing resource at `key` (version 1)."""
    return [
        (
            "CreateResource",
            resource_pb2.CreateResourceRequest(key=key, value=b"mine"),
            grpc.StatusCode.ALREADY_EXISTS,
            "RESOURCE_EXISTS",
            "absent",
            f"{key} already exists",
        ),
        (
            "UpdateResource",
            resource_pb2.UpdateResourceRequest(key=key, value=b"mine", expected_version=7),
            ABORTED,
            "VERSION_MISMATCH",
            "version 7",
            f"{key} is not at the expected version 7",
        ),
        (
            "CompareAndSet",
            resource_pb2.CompareAndSetRequest(key=key, value=b"mine", expect_absent=True),
            ABORTED,
            "VALUE_MISMATCH",
            "absent",
            f"{key} does not match the expected absent",
        ),
        (
            "CompareAndSet",
            resource_pb2.CompareAndSetRequest(key=key, value=b"mine", expected_value=b"guess"),
            ABORTED,
            "VALUE_MISMATCH",
            "value of 5 bytes",
            f"{key} does not match the expected value of 5 bytes",
        ),
        (
            "CompareAndSet",
            resource_pb2.CompareAndSetRequest(key=key, value=b"mine", expected_version=7),
            ABORTED,
            "VERSION_MISMATCH",
            "version 7",
            f"{key} is not at the expected version 7",
        ),
        (
            "DeleteResource",
            resource_pb2.DeleteResourceRequest(key=key, expected_version=7),
            ABORTED,
            "VERSION_MISMATCH",
            "version 7",
            f"{key} is not at the expected version 7",
        ),
    ]


def test_a_write_only_caller_learns_that_its_write_conflicted_not_the_state(
    channel: grpc.Channel, prefix: str
) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    key = f"a/{prefix}/doc"
    _owned_doc(resources, key)
    expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key=key),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("writer"),
    )
    for method, request, code, reason, expected, message in _write_conflicts(key):
        failure = expect_failure(getattr(resources, method), request, code, reason, metadata=as_("writer"))
        assert_withheld(conflict_of(failure), key, expected)
        assert failure.metadata == {"key": key}, method
        assert failure.message == message + WITHHELD, method
    unchanged = resources.GetResource(
        resource_pb2.GetResourceRequest(key=key), metadata=as_("owner"), timeout=10
    )
    assert (unchanged.version, unchanged.value) == (1, b"secret")


def test_a_reader_gets_the_whole_state_of_the_same_conflicts(channel: grpc.Channel, prefix: str) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    key = f"a/{prefix}/doc"
    current = _owned_doc(resources, key)
    for method, request, code, reason, expected, _ in _write_conflicts(key):
        failure = expect_failure(getattr(resources, method), request, code, reason, metadata=as_("reader"))
        detail = conflict_of(failure)
        assert not detail.state_withheld
        assert_conflict_is(detail, key, current, expected)
        assert failure.metadata == {"key": key, "current_version": "1"}, method
        assert "at version 1" in failure.message, method


def test_a_lock_only_caller_learns_that_the_lock_is_taken_not_by_whom(
    channel: grpc.Channel, prefix: str
) -> None:
    locks = lock_pb2_grpc.LockServiceStub(channel)
    name = f"a/{prefix}/lock"
    held = _owned_lock(locks, name)
    expect_failure(
        locks.GetLock, lock_pb2.GetLockRequest(name=name), DENIED, "PERMISSION_DENIED", metadata=as_("locker")
    )

    busy = expect_failure(
        locks.AcquireLock,
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30, holder="intruder"),
        ABORTED,
        "LOCK_HELD",
        metadata=as_("locker"),
    )
    assert_withheld(conflict_of(busy), name, "free")
    assert busy.metadata == {"name": name}
    assert busy.message == f"lock {name} is not free" + WITHHELD

    waited = expect_failure(
        locks.AcquireLock,
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30, wait_timeout=Duration(nanos=200_000_000)),
        ABORTED,
        "LOCK_HELD",
        metadata=as_("locker"),
    )
    assert_withheld(conflict_of(waited), name, "free")

    stale = expect_failure(
        locks.ReleaseLock,
        lock_pb2.ReleaseLockRequest(name=name, token=held.token + 1),
        ABORTED,
        "LOCK_NOT_HELD",
        metadata=as_("locker"),
    )
    assert_withheld(conflict_of(stale), name, f"token {held.token + 1}")
    assert stale.metadata == {"name": name}
    assert stale.message == f"token {held.token + 1} does not hold lock {name}" + WITHHELD

    # A caller that may read the lock sees who holds it, as GetLock would show it.
    seen = expect_failure(
        locks.AcquireLock,
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30),
        ABORTED,
        "LOCK_HELD",
        metadata=as_("reader"),
    )
    detail = conflict_of(seen)
    assert (detail.holder, detail.current_token, detail.lease_id) == ("owner-job", held.token, held.lease_id)
    assert detail.expire_time == held.expire_time
    assert not detail.state_withheld
    assert seen.message == f"lock {name} is held by owner-job (token {held.token})"


def _fenced_writes(key: str, fence: lock_pb2.Fence) -> list[tuple[str, Any]]:
    return [
        (
            "UpdateResource",
            resource_pb2.UpdateResourceRequest(key=key, value=b"x", allow_missing=True, fence=fence),
        ),
        ("DeleteResource", resource_pb2.DeleteResourceRequest(key=key, allow_missing=True, fence=fence)),
        (
            "CompareAndSet",
            resource_pb2.CompareAndSetRequest(key=key, value=b"x", expect_absent=True, fence=fence),
        ),
        (
            "Transact",
            resource_pb2.TransactRequest(
                operations=[resource_pb2.Operation(put=resource_pb2.PutOperation(key=key, value=b"x"))],
                fence=fence,
            ),
        ),
    ]


def _assert_fence_denied(
    resources: resource_pb2_grpc.ResourceServiceStub, key: str, fence: lock_pb2.Fence, identity: str
) -> None:
    for method, request in _fenced_writes(key, fence):
        failure = expect_failure(
            getattr(resources, method), request, DENIED, "PERMISSION_DENIED", metadata=as_(identity)
        )
        assert failure.metadata == {"identity": identity, "right": "lock", "key": fence.lock_name}, method
        assert failure.conflict is None, method


def test_a_fence_on_a_lock_outside_the_callers_lock_rights_is_denied_before_it_is_checked(
    channel: grpc.Channel, prefix: str
) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    locks = lock_pb2_grpc.LockServiceStub(channel)
    foreign = f"b/{prefix}/lock"
    held = _owned_lock(locks, foreign)
    key = f"a/{prefix}/fenced"
    # The holder's own token and a stale one get the same answer: no oracle, no state.
    for token in (held.token, held.token + 1):
        _assert_fence_denied(resources, key, lock_pb2.Fence(lock_name=foreign, token=token), "reader")
    # Write alone does not let a caller use a lock's token, even under its own prefix.
    own = _owned_lock(locks, f"a/{prefix}/lock")
    _assert_fence_denied(resources, key, lock_pb2.Fence(lock_name=own.name, token=own.token), "writer")
    expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key=key),
        grpc.StatusCode.NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        metadata=as_("owner"),
    )


def test_a_stale_fence_shows_the_lock_only_to_a_caller_that_may_read_it(
    channel: grpc.Channel, prefix: str
) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    locks = lock_pb2_grpc.LockServiceStub(channel)
    name = f"a/{prefix}/lock"
    held = _owned_lock(locks, name)
    stale = held.token + 1
    key = f"a/{prefix}/fenced"
    for method, request in _fenced_writes(key, lock_pb2.Fence(lock_name=name, token=stale)):
        failure = expect_failure(
            getattr(resources, method), request, ABORTED, "STALE_FENCE", metadata=as_("fencer")
        )
        assert_withheld(conflict_of(failure), name, f"token {stale}")
        assert failure.metadata == {"lock_name": name}, method
        assert failure.message == f"fence token {stale} is stale for lock {name}" + WITHHELD, method

        seen = expect_failure(
            getattr(resources, method), request, ABORTED, "STALE_FENCE", metadata=as_("reader")
        )
        detail = conflict_of(seen)
        assert (detail.holder, detail.current_token, detail.lease_id) == (
            "owner-job",
            held.token,
            held.lease_id,
        )
        assert seen.metadata == {"lock_name": name, "token": str(stale), "current_token": str(held.token)}


def test_a_transaction_conflict_is_shown_whole_to_the_reader_its_compares_need(
    channel: grpc.Channel, prefix: str
) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    key = f"a/{prefix}/doc"
    current = _owned_doc(resources, key)
    request = resource_pb2.TransactRequest(
        compares=[resource_pb2.Compare(key=key, version=7)],
        operations=[resource_pb2.Operation(put=resource_pb2.PutOperation(key=key, value=b"x"))],
    )
    expect_failure(resources.Transact, request, DENIED, "PERMISSION_DENIED", metadata=as_("writer"))
    failure = expect_failure(
        resources.Transact, request, ABORTED, "TRANSACTION_CONFLICT", metadata=as_("reader")
    )
    assert_conflict_is(conflict_of(failure), key, current, "version 7")


def _http(identity: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[identity]}"}


def test_http_problems_carry_the_state_only_for_a_reader(
    policy_server: ServerProcess, tmp_path: Path, prefix: str
) -> None:
    key = f"a/{prefix}/doc"
    name = f"a/{prefix}/lock"
    path = f"/v1/resources/{key}"
    with (
        gateway(policy_server, tmp_path) as process,
        httpx.Client(base_url=process.base_url, timeout=10) as http,
    ):
        created = http.put(path, content=b"secret", headers={**_http("owner"), "If-None-Match": "*"})
        assert created.status_code == 201
        lock = http.post(
            f"/v1/locks/{name}:acquire",
            json={"ttl_seconds": 60, "holder": "owner-job"},
            headers=_http("owner"),
        )
        assert lock.status_code == 200, lock.text

        answers: list[tuple[Callable[[dict[str, str]], httpx.Response], int, str, str, str, str]] = [
            (
                lambda who: http.put(path, content=b"mine", headers={**who, "If-None-Match": "*"}),
                409,
                "RESOURCE_EXISTS",
                "ALREADY_EXISTS",
                key,
                "absent",
            ),
            (
                lambda who: http.put(path, content=b"mine", headers={**who, "If-Match": '"1.7"'}),
                409,
                "VERSION_MISMATCH",
                "ABORTED",
                key,
                'etag "1.7"',
            ),
            (
                lambda who: http.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30}, headers=who),
                409,
                "LOCK_HELD",
                "ABORTED",
                name,
                "free",
            ),
        ]
        for call, status, reason, code, subject, expected in answers:
            who = "locker" if reason == "LOCK_HELD" else "writer"
            withheld = assert_problem(call(_http(who)), status, reason, code=code)
            assert withheld["conflict"] == {
                "key": subject,
                "expected": expected,
                "compare_index": 0,
                "state_withheld": True,
            }, reason
            assert withheld["detail"].endswith(WITHHELD), reason
            assert set(withheld["metadata"]) <= {"key", "name"}, reason

            response = call(_http("reader"))
            whole = assert_problem(response, status, reason, code=code)
            assert "state_withheld" not in whole["conflict"]
            if reason == "LOCK_HELD":
                assert (whole["conflict"]["holder"], whole["conflict"]["lease_id"]) == (
                    "owner-job",
                    lock.json()["lease_id"],
                )
            else:
                assert whole["conflict"]["current_version"] == 1
                assert base64.b64decode(whole["conflict"]["current_value_base64"]) == b"secret"
                assert response.headers["etag"] == created.headers["etag"]

        unseen = http.put(path, content=b"mine", headers={**_http("writer"), "If-None-Match": "*"})
        assert "etag" not in unseen.headers

        foreign = http.put(
            path,
            content=b"mine",
            headers={
                **_http("reader"),
                "Lockservice-Fence-Lock": f"b/{prefix}/lock",
                "Lockservice-Fence-Token": "1",
            },
        )
        problem = assert_problem(foreign, 403, "PERMISSION_DENIED", code="PERMISSION_DENIED")
        assert "conflict" not in problem

        deleted = http.delete(path, headers=_http("writer"))
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"resource": None, "revision": deleted.json()["revision"]}
        assert deleted.json()["revision"] > 0


def test_a_write_only_caller_deleting_a_key_does_not_read_its_last_state(
    channel: grpc.Channel, prefix: str
) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    key, other, seen = f"a/{prefix}/doc", f"a/{prefix}/other", f"a/{prefix}/seen"
    for name in (key, other, seen):
        _owned_doc(resources, name)

    deleted = resources.DeleteResource(
        resource_pb2.DeleteResourceRequest(key=key), metadata=as_("writer"), timeout=10
    )
    assert not deleted.HasField("resource")
    assert deleted.revision > 0
    transacted = resources.Transact(
        resource_pb2.TransactRequest(
            operations=[
                resource_pb2.Operation(delete=resource_pb2.DeleteOperation(key=other)),
                resource_pb2.Operation(put=resource_pb2.PutOperation(key=f"a/{prefix}/new", value=b"mine")),
            ]
        ),
        metadata=as_("writer"),
        timeout=10,
    )
    assert [(r.HasField("resource"), r.deleted) for r in transacted.results] == [(False, True), (True, False)]
    assert transacted.results[1].resource.value == b"mine"
    for name in (key, other):
        expect_failure(
            resources.GetResource,
            resource_pb2.GetResourceRequest(key=name),
            grpc.StatusCode.NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            metadata=as_("owner"),
        )

    # A reader's delete answers the last state, as without a policy.
    read = resources.DeleteResource(
        resource_pb2.DeleteResourceRequest(key=seen), metadata=as_("reader"), timeout=10
    )
    assert (read.resource.key, read.resource.value, read.resource.version) == (seen, b"secret", 1)


def test_a_lock_only_caller_releasing_learns_nothing_of_the_next_holder(
    channel: grpc.Channel, prefix: str
) -> None:
    locks = lock_pb2_grpc.LockServiceStub(channel)
    name = f"a/{prefix}/lock"
    mine = locks.AcquireLock(
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=60, holder="locker-job"),
        metadata=as_("locker"),
        timeout=10,
    )
    taken: list[lock_pb2.Lock] = []
    waiter = threading.Thread(
        target=lambda: taken.append(
            locks.AcquireLock(
                lock_pb2.AcquireLockRequest(
                    name=name, ttl_seconds=60, holder="owner-next", wait_timeout=Duration(seconds=30)
                ),
                metadata=as_("owner"),
                timeout=40,
            )
        )
    )
    waiter.start()
    deadline = time.monotonic() + 20
    while locks.GetLock(lock_pb2.GetLockRequest(name=name), metadata=as_("owner"), timeout=10).waiters < 1:
        assert time.monotonic() < deadline, "the owner's acquire never queued"
        time.sleep(0.05)

    released = locks.ReleaseLock(
        lock_pb2.ReleaseLockRequest(name=name, token=mine.token), metadata=as_("locker"), timeout=10
    ).lock
    waiter.join(timeout=30)
    assert [lock.holder for lock in taken] == ["owner-next"]
    # The lock as the caller's release left it: free, its own token; not the waiter that took it.
    assert released == lock_pb2.Lock(name=name, token=mine.token, lock_delay=released.lock_delay)
    assert released.lock_delay.ToNanoseconds() == 0
    assert taken[0].token == mine.token + 1
