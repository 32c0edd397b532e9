"""Limits that protect the server, answered with RESOURCE_EXHAUSTED: streams and watchers per
client, waiters per lock, message size.

SQLite only: the limits are enforced before the store is reached (waiters: in the core, the same
for every store).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.support import expect_failure

pytestmark = pytest.mark.backend_specific("sqlite", reason="the limits are enforced above the store")

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: each test uses keys of its own."""
    args = [
        *("--max-streams-per-client", "3", "--max-watchers-per-client", "2"),
        *("--max-waiters", "1", "--max-value-bytes", "1024"),
    ]
    server = ServerProcess(tmp_path_factory.mktemp("limits"), "sqlite", args).start()
    yield server
    server.stop()


def first_response(stream: Iterator[resource_pb2.WatchResponse]) -> resource_pb2.WatchResponse:
    return next(iter(stream))


def test_streams_and_watchers_per_client(limited: ServerProcess, prefix: str) -> None:
    with grpc.insecure_channel(limited.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        leases = lease_pb2_grpc.LeaseServiceStub(channel)
        watches = [
            resources.Watch(resource_pb2.WatchRequest(key=f"{prefix}/{i}"), timeout=30) for i in range(2)
        ]
        for watch in watches:
            first_response(watch)
        third = resources.Watch(resource_pb2.WatchRequest(key=f"{prefix}/3"), timeout=30)
        with pytest.raises(grpc.RpcError) as caught:
            first_response(third)
        assert caught.value.code() == EXHAUSTED
        assert caught.value.details() == (
            "this client already has 2 open watches, the limit; watch a common prefix instead of many keys"
        )

        lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=30), timeout=5)
        request = lease_pb2.KeepAliveRequest(lease_id=lease.lease_id)
        keepalive = leases.KeepAlive(iter([request] * 1000), timeout=30)  # the third stream
        next(keepalive)
        fourth = leases.KeepAlive(iter([request]), timeout=30)
        with pytest.raises(grpc.RpcError) as caught:
            next(fourth)
        assert caught.value.code() == EXHAUSTED
        assert caught.value.details() == "this client already has 3 open streams, the limit; close one first"

        # A closed stream gives its place back.
        keepalive.cancel()
        watches[0].cancel()
        for _ in range(100):
            try:
                first_response(resources.Watch(resource_pb2.WatchRequest(key=f"{prefix}/again"), timeout=30))
                break
            except grpc.RpcError as error:  # the server may not have seen the cancel yet
                assert error.code() == EXHAUSTED
        else:
            pytest.fail("the watch quota was not given back")


def test_waiters_per_lock(limited: ServerProcess, prefix: str) -> None:
    name = f"{prefix}/lock"
    with grpc.insecure_channel(limited.address) as channel:
        locks = lock_pb2_grpc.LockServiceStub(channel)
        locks.AcquireLock(lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30), timeout=5)
        waiting = lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30)
        waiting.wait_timeout.FromSeconds(20)
        queued = locks.AcquireLock.future(waiting, timeout=25)
        for _ in range(200):  # until the first waiter is queued
            if locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=5).waiters:
                break
            time.sleep(0.01)
        failure = expect_failure(locks.AcquireLock, waiting, EXHAUSTED, "LIMIT_EXCEEDED")
        assert failure.message == f"lock {name} already has 1 waiters, the limit"
        queued.cancel()


def test_an_oversized_message_is_refused(limited: ServerProcess, prefix: str) -> None:
    with grpc.insecure_channel(limited.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        # Past --max-value-bytes: a clear INVALID_ARGUMENT from the core...
        expect_failure(
            resources.CreateResource,
            resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"x" * 1025),
            grpc.StatusCode.INVALID_ARGUMENT,
            "VALUE_TOO_LARGE",
        )
        # ...and a message far past any value is stopped by gRPC before it is read.
        with pytest.raises(grpc.RpcError) as caught:
            resources.CreateResource(
                resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"x" * 200_000), timeout=5
            )
        assert caught.value.code() == EXHAUSTED
