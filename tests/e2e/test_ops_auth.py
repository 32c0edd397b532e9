"""Bearer-token authentication, the authorization table by key prefix, and lease ownership.

One server for the module (auth is decided per call, so the tests cannot disturb each other:
each writes under its own key prefix). SQLite only: authentication and authorization happen
before the store is reached, the same for every backend.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lockservice.v1 import (
    lease_pb2,
    lease_pb2_grpc,
    lock_pb2,
    lock_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
)
from tests.conftest import ServerProcess
from tests.e2e.ops_support import bearer, write_tokens
from tests.e2e.support import expect_failure

pytestmark = pytest.mark.backend_specific(
    "sqlite", reason="authentication and authorization are decided before the store is reached"
)

TOKENS = {name: secrets.token_hex(24) for name in ("alice", "bob", "carol")}
POLICY = """
[[grant]]
identity = "alice"
prefix = "shared/"
rights = ["read", "write", "lock"]

[[grant]]
identity = "bob"
prefix = "shared/"
rights = ["read", "lock"]

[[grant]]
identity = "*"
prefix = "public/"
rights = ["read"]
"""
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir: Path = tmp_path_factory.mktemp("auth")
    policy = workdir / "policy.toml"
    policy.write_text(POLICY)
    tokens = write_tokens(workdir, TOKENS)
    server = ServerProcess(
        workdir, "sqlite", ["--auth-tokens", str(tokens), "--auth-policy", str(policy)]
    ).start()
    yield server
    server.stop()


@pytest.fixture
def channel(auth_server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(auth_server.address) as ch:
        yield ch


def as_(identity: str) -> tuple[tuple[str, str]]:
    return bearer(TOKENS[identity])


def test_a_call_without_credentials_is_unauthenticated(channel: grpc.Channel) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    failure = expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key="shared/x"),
        UNAUTHENTICATED,
        "UNAUTHENTICATED",
    )
    assert failure.message == "this server needs credentials: send 'authorization: Bearer TOKEN' metadata"
    assert failure.metadata == {"scheme": "Bearer"}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer not-a-token-of-ours-0123456789", "the bearer token is not valid"),
        ("Basic YWxpY2U6c2VjcmV0", "the authorization metadata must be 'Bearer TOKEN'"),
    ],
)
def test_a_bad_credential_is_unauthenticated(channel: grpc.Channel, header: str, message: str) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    failure = expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key="shared/x"),
        UNAUTHENTICATED,
        "UNAUTHENTICATED",
        metadata=(("authorization", header),),
    )
    assert failure.message == message


def test_health_needs_no_credentials(channel: grpc.Channel) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_rights_are_granted_by_prefix(channel: grpc.Channel) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    created = resources.CreateResource(
        resource_pb2.CreateResourceRequest(key="shared/rights/a", value=b"1"),
        metadata=as_("alice"),
        timeout=5,
    )
    # bob may read under shared/ but not write.
    assert (
        resources.GetResource(
            resource_pb2.GetResourceRequest(key="shared/rights/a"), metadata=as_("bob"), timeout=5
        )
        == created
    )
    failure = expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key="shared/rights/a", value=b"2"),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("bob"),
    )
    assert failure.message == "identity 'bob' has no write right on 'shared/rights/a'"
    assert failure.metadata == {"identity": "bob", "right": "write", "key": "shared/rights/a"}
    # Nobody was granted private/; carol was granted nothing but public/ reads.
    expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key="private/a"),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("alice"),
    )
    expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key="shared/rights/a"),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("carol"),
    )
    # The grant to "*" reaches every identity: carol may read public/ (here: learn it is missing).
    expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key="public/none"),
        grpc.StatusCode.NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        metadata=as_("carol"),
    )


def test_a_range_needs_a_grant_covering_all_of_it(channel: grpc.Channel) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    listed = resources.ListResources(
        resource_pb2.ListResourcesRequest(prefix="shared/"), metadata=as_("bob"), timeout=5
    )
    assert listed.revision >= 0
    # "shared" also covers "shared-archive/...", which bob was not granted.
    failure = expect_failure(
        resources.ListResources,
        resource_pb2.ListResourcesRequest(prefix="shared"),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("bob"),
    )
    assert failure.message == "identity 'bob' has no read right on the keys under 'shared'"
    stream = resources.Watch(resource_pb2.WatchRequest(key="", prefix=True), metadata=as_("alice"), timeout=5)
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(stream))
    assert caught.value.code() == DENIED
    established = next(
        iter(
            resources.Watch(
                resource_pb2.WatchRequest(key="shared/", prefix=True), metadata=as_("bob"), timeout=5
            )
        )
    )
    assert list(established.events) == []


def test_a_transaction_needs_read_on_compares_and_write_on_operations(channel: grpc.Channel) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    put = resource_pb2.Operation(put=resource_pb2.PutOperation(key="shared/txn/b", value=b"v"))
    failure = expect_failure(
        resources.Transact,
        resource_pb2.TransactRequest(
            compares=[resource_pb2.Compare(key="private/txn/a", absent=True)], operations=[put]
        ),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("alice"),
    )
    assert failure.metadata == {"identity": "alice", "right": "read", "key": "private/txn/a"}
    failure = expect_failure(
        resources.Transact,
        resource_pb2.TransactRequest(operations=[put]),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("bob"),
    )
    assert failure.metadata == {"identity": "bob", "right": "write", "key": "shared/txn/b"}
    done = resources.Transact(
        resource_pb2.TransactRequest(operations=[put]), metadata=as_("alice"), timeout=5
    )
    assert done.results[0].resource.version == 1


def test_locks_need_the_lock_right(channel: grpc.Channel) -> None:
    locks = lock_pb2_grpc.LockServiceStub(channel)
    failure = expect_failure(
        locks.AcquireLock,
        lock_pb2.AcquireLockRequest(name="shared/locks/a", ttl_seconds=10),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("carol"),
    )
    assert failure.metadata == {"identity": "carol", "right": "lock", "key": "shared/locks/a"}
    held = locks.AcquireLock(
        lock_pb2.AcquireLockRequest(name="shared/locks/a", ttl_seconds=10), metadata=as_("bob"), timeout=5
    )
    assert held.held


def test_only_the_owner_may_use_refresh_revoke_or_read_a_lease(channel: grpc.Channel) -> None:
    leases = lease_pb2_grpc.LeaseServiceStub(channel)
    lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=30), metadata=as_("alice"), timeout=5)
    assert len(lease.lease_id) == 48  # the owner's tag, then 128 random bits
    for call, request in (
        (leases.RefreshLease, lease_pb2.RefreshLeaseRequest(lease_id=lease.lease_id)),
        (leases.RevokeLease, lease_pb2.RevokeLeaseRequest(lease_id=lease.lease_id)),
        (leases.GetLease, lease_pb2.GetLeaseRequest(lease_id=lease.lease_id)),
    ):
        failure = expect_failure(call, request, DENIED, "PERMISSION_DENIED", metadata=as_("bob"))
        assert failure.metadata == {"field": "lease_id", "lease_id": lease.lease_id}
    keepalive = leases.KeepAlive(
        iter([lease_pb2.KeepAliveRequest(lease_id=lease.lease_id)]), metadata=as_("bob"), timeout=5
    )
    with pytest.raises(grpc.RpcError) as caught:
        list(keepalive)
    assert caught.value.code() == DENIED
    # Nor may another identity hang its lock on someone else's lease.
    locks = lock_pb2_grpc.LockServiceStub(channel)
    expect_failure(
        locks.AcquireLock,
        lock_pb2.AcquireLockRequest(name="shared/leases/l", lease_id=lease.lease_id),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("bob"),
    )
    # The owner may do all of it.
    assert (
        leases.RefreshLease(
            lease_pb2.RefreshLeaseRequest(lease_id=lease.lease_id), metadata=as_("alice"), timeout=5
        ).lease_id
        == lease.lease_id
    )
    replies = list(
        leases.KeepAlive(
            iter([lease_pb2.KeepAliveRequest(lease_id=lease.lease_id)]), metadata=as_("alice"), timeout=5
        )
    )
    assert [reply.lease_id for reply in replies] == [lease.lease_id]
    leases.RevokeLease(
        lease_pb2.RevokeLeaseRequest(lease_id=lease.lease_id), metadata=as_("alice"), timeout=5
    )


def test_only_the_holder_may_release_a_lock(channel: grpc.Channel) -> None:
    locks = lock_pb2_grpc.LockServiceStub(channel)
    name = "shared/release/a"
    held = locks.AcquireLock(
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=10), metadata=as_("alice"), timeout=5
    )
    failure = expect_failure(
        locks.ReleaseLock,
        lock_pb2.ReleaseLockRequest(name=name, token=held.token),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("bob"),
    )
    assert failure.message == f"lock {name} is held by another identity; only the holder may release it"
    assert failure.metadata == {"name": name, "token": str(held.token)}
    released = locks.ReleaseLock(
        lock_pb2.ReleaseLockRequest(name=name, token=held.token), metadata=as_("alice"), timeout=5
    )
    assert not released.lock.held


def test_a_lock_handed_to_a_waiter_belongs_to_the_waiter(channel: grpc.Channel) -> None:
    locks = lock_pb2_grpc.LockServiceStub(channel)
    name = "shared/handover/a"
    first = locks.AcquireLock(
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=10), metadata=as_("alice"), timeout=5
    )
    handed: list[lock_pb2.Lock] = []

    def wait_as_bob() -> None:
        request = lock_pb2.AcquireLockRequest(name=name, ttl_seconds=10)
        request.wait_timeout.FromSeconds(10)
        handed.append(locks.AcquireLock(request, metadata=as_("bob"), timeout=15))

    waiter = threading.Thread(target=wait_as_bob)
    waiter.start()
    for _ in range(200):  # until bob is queued
        if locks.GetLock(lock_pb2.GetLockRequest(name=name), metadata=as_("bob"), timeout=5).waiters:
            break
        threading.Event().wait(0.01)
    locks.ReleaseLock(
        lock_pb2.ReleaseLockRequest(name=name, token=first.token), metadata=as_("alice"), timeout=5
    )
    waiter.join(timeout=15)
    (second,) = handed
    assert second.token == first.token + 1
    expect_failure(
        locks.ReleaseLock,
        lock_pb2.ReleaseLockRequest(name=name, token=second.token),
        DENIED,
        "PERMISSION_DENIED",
        metadata=as_("alice"),
    )
    locks.ReleaseLock(
        lock_pb2.ReleaseLockRequest(name=name, token=second.token), metadata=as_("bob"), timeout=5
    )


def test_tokens_never_reach_the_logs(channel: grpc.Channel, auth_server: ServerProcess) -> None:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    resources.ListResources(
        resource_pb2.ListResourcesRequest(prefix="shared/"), metadata=as_("alice"), timeout=5
    )
    logs = auth_server.logs()
    assert '"method": "ListResources"' in logs
    for token in TOKENS.values():
        assert token not in logs
