"""Prometheus metrics on --metrics-listen: exposed, and moving after calls."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from bench.ports import free_port
from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.e2e.ops_support import scrape
from tests.e2e.support import ServerFactory, create, expect_failure
from tests.grpc_errors import decode

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(port: int, name: str, expected: float, **labels: str) -> Samples:
    """Scrapes until `name{labels}` reads `expected` (a gauge sampled at scrape time)."""
    deadline = time.monotonic() + 5
    samples = scrape(port)
    while value(samples, name, **labels) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        samples = scrape(port)
    return samples


@pytest.mark.backend_specific(
    "sqlite", reason="calls are measured above the store; SQLite counts its commits"
)
def test_metrics_move_after_calls(server_factory: ServerFactory, prefix: str) -> None:
    port = free_port()
    server = server_factory(["--metrics-listen", f"127.0.0.1:{port}"]).start()
    before = scrape(port)
    assert value(before, "lockservice_rpc_calls_total", method="CreateResource", code="OK") == 0
    assert value(before, "process_resident_memory_bytes") > 0

    key = f"{prefix}/k"
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        locks = lock_pb2_grpc.LockServiceStub(channel)
        create(resources, key, b"v")
        expect_failure(
            resources.CreateResource,
            resource_pb2.CreateResourceRequest(key=key, value=b"v"),
            grpc.StatusCode.ALREADY_EXISTS,
            "RESOURCE_EXISTS",
        )
        expect_failure(
            resources.UpdateResource,
            resource_pb2.UpdateResourceRequest(key=key, value=b"w", expected_version=9),
            grpc.StatusCode.ABORTED,
            "VERSION_MISMATCH",
        )
        acquire = lock_pb2.AcquireLockRequest(name=f"{prefix}/lock", ttl_seconds=10)
        acquire.wait_timeout.FromMilliseconds(200)
        locks.AcquireLock(acquire, timeout=5)
        expect_failure(locks.AcquireLock, acquire, grpc.StatusCode.ABORTED, "LOCK_HELD")
        watch = resources.Watch(resource_pb2.WatchRequest(key=key), timeout=10)
        next(iter(watch))  # established
        during = wait_for(port, "lockservice_watchers", 1)
        watch.cancel()

    assert value(during, "lockservice_watchers") == 1
    assert value(during, "lockservice_rpc_calls_total", method="CreateResource", code="OK") == 1
    assert value(during, "lockservice_rpc_calls_total", method="CreateResource", code="ALREADY_EXISTS") == 1
    assert value(during, "lockservice_rpc_calls_total", method="UpdateResource", code="ABORTED") == 1
    assert value(during, "lockservice_rpc_duration_seconds_count", method="CreateResource") == 2
    assert value(during, "lockservice_rpc_duration_seconds_bucket", method="CreateResource", le="+Inf") == 2
    assert value(during, "lockservice_conflicts_total", reason="RESOURCE_EXISTS") == 1
    assert value(during, "lockservice_conflicts_total", reason="VERSION_MISMATCH") == 1
    assert value(during, "lockservice_conflicts_total", reason="LOCK_HELD") == 1
    assert value(during, "lockservice_lock_wait_seconds_count", outcome="acquired") == 1
    assert value(during, "lockservice_lock_wait_seconds_count", outcome="timed_out") == 1
    assert value(during, "lockservice_lock_wait_seconds_sum", outcome="timed_out") >= 0.2
    assert value(during, "lockservice_store_commits_total") >= 1
    # The create, the acquire, the queued acquire and its leaving the queue, at least.
    assert value(during, "lockservice_store_committed_writes_total") >= 4

    after = wait_for(port, "lockservice_watchers", 0)
    assert value(after, "lockservice_watchers") == 0
    assert server.stop() == 0


@pytest.mark.backend_specific("sqlite", reason="which ports a server opens does not depend on its store")
def test_no_metrics_port_unless_asked(server_factory: ServerFactory) -> None:
    server = server_factory().start()
    assert "metrics_listen" in server.logs()
    assert '"metrics_listen": null' in server.logs()


def test_store_gauges_and_commit_histograms_move(server_factory: ServerFactory, prefix: str) -> None:
    port = free_port()
    server = server_factory(["--metrics-listen", f"127.0.0.1:{port}"]).start()
    with grpc.insecure_channel(server.address) as channel:
        locks = lock_pb2_grpc.LockServiceStub(channel)
        held = locks.AcquireLock(
            lock_pb2.AcquireLockRequest(name=f"{prefix}/lock", ttl_seconds=30), timeout=5
        )
        # The gauges are sampled every few seconds: wait for the sample that sees the lock.
        deadline = time.monotonic() + 12
        samples = scrape(port)
        while value(samples, "lockservice_store_locks_held") != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            samples = scrape(port)
        assert value(samples, "lockservice_store_locks_held") == 1
        assert value(samples, "lockservice_store_leases") == 1
        assert value(samples, "lockservice_store_waiters") == 0
        assert value(samples, "lockservice_store_size_bytes") > 0
        assert value(samples, "lockservice_store_commit_batch_size_count") >= 1
        assert value(samples, "lockservice_store_commit_duration_seconds_count") >= 1
        locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=f"{prefix}/lock", token=held.token), timeout=5)
    assert server.stop() == 0


def _every_method() -> list[tuple[str, bool, bool]]:
    """(path, client_streaming, server_streaming) of every RPC the server serves: our three
    services, health and reflection."""
    methods = []
    for module in (resource_pb2, lease_pb2, lock_pb2, health_pb2, reflection_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                methods.append(
                    (f"/{service.full_name}/{method.name}", method.client_streaming, method.server_streaming)
                )
    return methods


@pytest.mark.backend_specific("sqlite", reason="the call wrapper and metrics sit above the store")
def test_corrupt_messages_with_metrics_on_are_invalid_argument_on_every_method(
    server_factory: ServerFactory,
) -> None:
    """Issue #14 item 4: with --metrics-listen, a corrupt AcquireLock answered UNKNOWN with
    "'CorruptMessage' object has no attribute 'HasField'" (and health and reflection answered
    any corrupt message so); every method, unary or streaming, must answer INVALID_ARGUMENT and
    count it as such."""
    port = free_port()
    server = server_factory(["--metrics-listen", f"127.0.0.1:{port}"]).start()
    corrupt = b"\xff\xff\xff\xff\xff"
    with grpc.insecure_channel(server.address) as channel:
        for path, client_streaming, server_streaming in _every_method():
            kind = (
                ("stream" if client_streaming else "unary")
                + "_"
                + ("stream" if server_streaming else "unary")
            )
            call = getattr(channel, kind)(
                path, request_serializer=lambda data: data, response_deserializer=lambda data: data
            )
            request = iter([corrupt]) if client_streaming else corrupt
            with pytest.raises(grpc.RpcError) as caught:
                reply = call(request, timeout=10)
                if server_streaming:
                    list(reply)
            failure = decode(caught.value)
            assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"), (
                path,
                failure.message,
            )
            assert "corrupt protobuf wire format" in failure.message
            assert "object has no attribute" not in failure.message
        # Health and reflection still answer well-formed requests.
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=10)
        assert next(iter(watch)).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
    samples = scrape(port)
    assert value(samples, "lockservice_rpc_calls_total", method="AcquireLock", code="INVALID_ARGUMENT") == 1
    assert value(samples, "lockservice_rpc_calls_total", method="KeepAlive", code="INVALID_ARGUMENT") == 1
    assert not any(
        key[0] == "lockservice_rpc_calls_total" and ("code", "UNKNOWN") in key[1] for key in samples
    )
    assert '"rpc failed"' not in server.logs()


def test_lease_expiries_are_counted(server_factory: ServerFactory, prefix: str) -> None:
    """A lease left to its deadline is ended by the expiry task: one more expiry; a revoked one
    is no expiry."""
    port = free_port()
    server = server_factory(["--metrics-listen", f"127.0.0.1:{port}"]).start()
    with grpc.insecure_channel(server.address) as channel:
        leases = lease_pb2_grpc.LeaseServiceStub(channel)
        revoked = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=30), timeout=5)
        leases.RevokeLease(lease_pb2.RevokeLeaseRequest(lease_id=revoked.lease_id), timeout=5)
        leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=1), timeout=5)
        samples = wait_for(port, "lockservice_lease_expiries_total", 1)
    assert value(samples, "lockservice_lease_expiries_total") == 1
    assert server.stop() == 0
