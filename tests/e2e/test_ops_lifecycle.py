"""Start, drain and restart as an operator sees them: health across the drain, refusals during
it, a second SIGTERM, recovery after kill -9, unix socket permissions, caller request ids."""

from __future__ import annotations

import queue
import signal
import stat
import subprocess
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.ports import free_port
from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import LOCKSERVICE, ServerProcess
from tests.e2e.ops_support import log_records
from tests.e2e.support import ServerFactory, assert_missing, expect_failure

SQLITE_ONLY = pytest.mark.backend_specific(
    "sqlite", reason="the drain, signals and the listening socket are the same for every store"
)


class KeepAliveStream:
    """A KeepAlive stream whose requests the test sends one at a time."""

    def __init__(self, channel: grpc.Channel, lease_id: str) -> None:
        self._lease_id = lease_id
        self._outbox: queue.Queue[lease_pb2.KeepAliveRequest | None] = queue.Queue()
        stub = lease_pb2_grpc.LeaseServiceStub(channel)
        self._replies = stub.KeepAlive(self._requests(), timeout=60)

    def _requests(self) -> Iterator[lease_pb2.KeepAliveRequest]:
        while (item := self._outbox.get(timeout=60)) is not None:
            yield item

    def refresh(self) -> lease_pb2.KeepAliveResponse:
        self._outbox.put(lease_pb2.KeepAliveRequest(lease_id=self._lease_id))
        reply: lease_pb2.KeepAliveResponse = next(self._replies)
        return reply

    def close(self) -> None:
        self._outbox.put(None)
        for _ in self._replies:
            pass


def health_status(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        status: int = reply.status
        return status


def health_command(address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOCKSERVICE, "health", "--target", address, "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def drain_started(server: ServerProcess) -> None:
    deadline = time.monotonic() + 5
    while not log_records(server, "draining") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log_records(server, "draining")


@SQLITE_ONLY
def test_drain_reports_not_serving_refuses_new_calls_and_lets_streams_finish(
    server_factory: ServerFactory, prefix: str
) -> None:
    server = server_factory(["--grace-period", "20"]).start()
    assert health_command(server.address).returncode == 0
    with grpc.insecure_channel(server.address) as channel:
        leases = lease_pb2_grpc.LeaseServiceStub(channel)
        lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=30), timeout=5)
        stream = KeepAliveStream(channel, lease.lease_id)
        assert stream.refresh().lease_id == lease.lease_id

        server.signal(signal.SIGTERM)
        drain_started(server)
        assert health_status(server.address) == health_pb2.HealthCheckResponse.NOT_SERVING
        result = health_command(server.address)
        assert (result.returncode, result.stdout) == (1, f"{server.address}: NOT_SERVING\n")
        failure = expect_failure(
            resource_pb2_grpc.ResourceServiceStub(channel).GetResource,
            resource_pb2.GetResourceRequest(key=f"{prefix}/k"),
            grpc.StatusCode.UNAVAILABLE,
            "SHUTTING_DOWN",
        )
        assert failure.message == "the server is shutting down; retry on another replica or after the restart"
        # The stream in flight keeps the lease alive while its client moves elsewhere.
        assert stream.refresh().lease_id == lease.lease_id
        assert server.process is not None
        assert server.process.poll() is None
        stream.close()
        started = time.monotonic()
        assert server.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5  # it did not wait out the 20 s grace period
    assert health_command(server.address).returncode == 1  # nothing listens any more


@SQLITE_ONLY
def test_a_second_sigterm_stops_at_once(server_factory: ServerFactory) -> None:
    server = server_factory(["--grace-period", "60"]).start()
    with grpc.insecure_channel(server.address) as channel:
        leases = lease_pb2_grpc.LeaseServiceStub(channel)
        lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=30), timeout=5)
        stream = KeepAliveStream(channel, lease.lease_id)
        stream.refresh()
        server.signal(signal.SIGTERM)
        drain_started(server)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.process is not None
        assert server.process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    assert log_records(server, "second signal: stopping without waiting for in-flight calls")


def test_restart_after_kill_9_ends_overdue_leases(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory().start()
    name, key = f"{prefix}/lock", f"{prefix}/attached"
    with grpc.insecure_channel(server.address) as channel:
        leases = lease_pb2_grpc.LeaseServiceStub(channel)
        locks = lock_pb2_grpc.LockServiceStub(channel)
        lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=1), timeout=5)
        held = locks.AcquireLock(lock_pb2.AcquireLockRequest(name=name, lease_id=lease.lease_id), timeout=5)
        resource_pb2_grpc.ResourceServiceStub(channel).CreateResource(
            resource_pb2.CreateResourceRequest(key=key, value=b"v", lease_id=lease.lease_id), timeout=5
        )
    server.kill9()
    time.sleep(1.2)  # the lease's deadline passes while no server runs
    server.start()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        locks = lock_pb2_grpc.LockServiceStub(channel)
        assert_missing(resources, key)
        assert not locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=5).held
        expect_failure(
            lease_pb2_grpc.LeaseServiceStub(channel).GetLease,
            lease_pb2.GetLeaseRequest(lease_id=lease.lease_id),
            grpc.StatusCode.NOT_FOUND,
            "LEASE_NOT_FOUND",
        )
        again = locks.AcquireLock(lock_pb2.AcquireLockRequest(name=name, ttl_seconds=5), timeout=5)
        assert again.token == held.token + 1
    assert server.stop() == 0


@SQLITE_ONLY
@pytest.mark.parametrize(("args", "mode"), [([], 0o660), (["--socket-mode", "0600"], 0o600)])
def test_unix_socket_gets_its_file_mode(server_factory: ServerFactory, args: list[str], mode: int) -> None:
    server = server_factory(args)
    socket_path = server.workdir / "ls.sock"
    server.address = f"unix:{socket_path}"
    server.start()
    assert stat.S_ISSOCK(socket_path.stat().st_mode)
    assert stat.S_IMODE(socket_path.stat().st_mode) == mode
    assert health_status(server.address) == health_pb2.HealthCheckResponse.SERVING
    assert server.stop() == 0


@SQLITE_ONLY
def test_a_health_port_serves_probes_and_nothing_else(server_factory: ServerFactory) -> None:
    health_address = f"127.0.0.1:{free_port()}"
    server = server_factory(["--health-listen", health_address])
    server.address = f"unix:{server.workdir / 'ls.sock'}"  # the sidecar's API is on its socket
    server.start()
    assert health_status(health_address) == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(health_address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            resource_pb2_grpc.ResourceServiceStub(channel).GetResource(
                resource_pb2.GetResourceRequest(key="k"), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert server.stop() == 0


@SQLITE_ONLY
def test_the_callers_request_id_is_logged(server_factory: ServerFactory, prefix: str) -> None:
    """Two ids under two keys: the idempotency key of a write (`request_id`) and the caller's
    x-request-id (`correlation_id`), never one standing in for the other."""
    server = server_factory().start()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        resources.CreateResource(
            resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"v", request_id="idem-1"),
            metadata=(("x-request-id", "req-0001"),),
            timeout=5,
        )
        resources.GetResource(
            resource_pb2.GetResourceRequest(key=f"{prefix}/k"),
            metadata=(("x-request-id", "req-7f3a"),),
            timeout=5,
        )
        failure = expect_failure(
            resources.GetResource,
            resource_pb2.GetResourceRequest(key=f"{prefix}/k"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_REQUEST_ID",
            metadata=(("x-request-id", "x" * 129),),
        )
        assert failure.metadata == {"field": "x-request-id", "limit": "128"}
    deadline = time.monotonic() + 5
    while len(log_records(server, "rpc")) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    records = log_records(server, "rpc")
    assert [(r["method"], r["code"], r["request_id"], r["correlation_id"]) for r in records] == [
        ("CreateResource", "OK", "idem-1", "req-0001"),
        ("GetResource", "OK", None, "req-7f3a"),
        ("GetResource", "INVALID_ARGUMENT", None, None),
    ]


@SQLITE_ONLY
def test_a_corrupt_keepalive_message_is_invalid_argument(server_factory: ServerFactory) -> None:
    server = server_factory().start()
    with grpc.insecure_channel(server.address) as channel:
        raw = channel.stream_stream(
            "/lockservice.v1.LeaseService/KeepAlive",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        with pytest.raises(grpc.RpcError) as caught:
            list(raw(iter([b"\xff\xff\xff"]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == (
        "the request is not a valid lockservice.v1.KeepAliveRequest message (corrupt protobuf wire format)"
    )
