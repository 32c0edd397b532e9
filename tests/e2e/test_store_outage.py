"""A PostgreSQL outage while serving: calls answer UNAVAILABLE within their deadline, probes see
NOT_SERVING until the database is back, the log stays short, and the server recovers by itself.

PostgreSQL-specific: the outage is played by cutting a TCP proxy between the server and the
machine's shared PostgreSQL server (which stays up for everyone else). SQLite has no connection
to lose; its failures (a full disk, a bad file) are in test_disk_full.py and test_bad_store.py.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from lockservice_client import Client, StoreUnavailable

from bench.ports import free_port
from lockservice.v1 import lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import LOCKSERVICE, ServerProcess
from tests.e2e.db_proxy import DatabaseProxy
from tests.e2e.ops_support import scrape
from tests.e2e.support import ServerFactory
from tests.grpc_errors import Failure, decode

pytestmark = pytest.mark.backend_specific("postgres", reason="only PostgreSQL is reached over a network")


def _outage_server(server_factory: ServerFactory, proxy: DatabaseProxy, *args: str) -> ServerProcess:
    database = server_factory(name="database")  # never started: it only creates the database
    return server_factory(list(args), store_url=proxy.route(database.store_url)).start()


def _timed_failure(call: Callable[..., Any], request: Any, timeout: float | None) -> tuple[Failure, float]:
    started = time.monotonic()
    try:
        call(request, timeout=timeout)
    except grpc.RpcError as error:
        seconds = time.monotonic() - started
        if rpc_status.from_call(error) is None:  # not our answer: a passed deadline, a lost connection
            return Failure(error.code(), error.details() or "", "", "", {}, None), seconds
        return decode(error), seconds
    raise AssertionError("the call succeeded during the outage")


def _health(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    status: int = reply.status
    return status


def _wait_for_health(address: str, status: int, within: float) -> float:
    """Seconds until the server's health is `status`; fails after `within` seconds."""
    started = time.monotonic()
    while (seen := _health(address)) != status:
        assert time.monotonic() - started < within, f"health still {seen} after {within} s"
        time.sleep(0.2)
    return time.monotonic() - started


def _records(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]


def test_calls_answer_unavailable_within_their_deadline(
    server_factory: ServerFactory, proxy: DatabaseProxy, prefix: str
) -> None:
    server = _outage_server(server_factory, proxy)
    key = f"{prefix}/k"
    with grpc.insecure_channel(server.address) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        stub.CreateResource(resource_pb2.CreateResourceRequest(key=key, value=b"1"), timeout=10)
        proxy.cut()
        # More calls at once than the server has database connections and threads: none waits
        # behind another past its own deadline.
        results: list[tuple[Failure, float]] = []
        guard = threading.Lock()

        def caller(index: int) -> None:
            if index % 2:
                outcome = _timed_failure(stub.GetResource, resource_pb2.GetResourceRequest(key=key), 3.0)
            else:
                update = resource_pb2.UpdateResourceRequest(key=key, value=b"2")
                outcome = _timed_failure(stub.UpdateResource, update, 3.0)
            with guard:
                results.append(outcome)

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(results) == 24
        for failure, seconds in results:
            assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE"), (
                failure.code,
                failure.message,
            )
            assert seconds < 3.0
            assert "database" in failure.message
        # The Python client's own retries on UNAVAILABLE end within its deadline, and it is
        # told the store is unavailable, not that the deadline passed.
        for timeout in (4.0, 10.0):
            with Client(server.address, timeout=timeout) as client:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    client.get(key)
                assert time.monotonic() - started < timeout
        # Without a deadline the wait is bounded too (5 s, "When the store fails" in docs/operations.md).
        failure, seconds = _timed_failure(stub.GetResource, resource_pb2.GetResourceRequest(key=key), None)
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")
        assert seconds < 8.0
        proxy.restore()
        _wait_for_health(server.address, health_pb2.HealthCheckResponse.SERVING, within=20)
        updated = stub.UpdateResource(resource_pb2.UpdateResourceRequest(key=key, value=b"3"), timeout=10)
        assert updated.value == b"3"


def test_probes_follow_the_database_and_the_log_stays_short(
    server_factory: ServerFactory, proxy: DatabaseProxy, prefix: str
) -> None:
    http_port = free_port()
    server = _outage_server(server_factory, proxy, "--http-listen", f"127.0.0.1:{http_port}")
    ready_url = f"http://127.0.0.1:{http_port}/readyz"
    assert _health(server.address) == health_pb2.HealthCheckResponse.SERVING
    assert httpx.get(ready_url, timeout=10).status_code == 200
    lines_before = len(_records(server))
    proxy.cut()
    cut_at = time.monotonic()
    _wait_for_health(server.address, health_pb2.HealthCheckResponse.NOT_SERVING, within=10)
    assert httpx.get(ready_url, timeout=10).status_code == 503
    probe = subprocess.run(
        [LOCKSERVICE, "health", "--target", server.address],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert probe.returncode == 1
    assert "NOT_SERVING" in probe.stdout
    # Liveness does not follow the store: a liveness probe restarts no replica for it.
    assert _health(server.address, "liveness") == health_pb2.HealthCheckResponse.SERVING
    assert _health(server.address, "lockservice.v1.LockService") == health_pb2.HealthCheckResponse.NOT_SERVING
    # The HTTP adapter's calls carry its call timeout (30 s): the store's 5 s bound answers first.
    started = time.monotonic()
    answer = httpx.get(f"http://127.0.0.1:{http_port}/v1/resources/{prefix}", timeout=30)
    assert time.monotonic() - started < 8
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["reason"] == "STORE_UNAVAILABLE"
    # Calls keep coming during the outage; still the log does not repeat itself.
    with grpc.insecure_channel(server.address) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        while time.monotonic() - cut_at < 12:
            failure, _ = _timed_failure(stub.GetResource, resource_pb2.GetResourceRequest(key=prefix), 1.0)
            assert failure.reason == "STORE_UNAVAILABLE"
        assert _health(server.address) == health_pb2.HealthCheckResponse.NOT_SERVING
        outage_lines = [r for r in _records(server)[lines_before:] if r.get("event") != "rpc"]
        warnings = [r for r in outage_lines if r.get("level") in {"warning", "error"}]
        assert 1 <= len(warnings) <= 4, outage_lines
        assert len(outage_lines) <= 6, outage_lines
        events = {r["event"] for r in warnings}
        assert "database unreachable" in events
        assert events <= {"database unreachable", "listen connection lost; reconnecting"}, warnings
        assert "password" not in json.dumps(outage_lines)
        proxy.restore()
        _wait_for_health(server.address, health_pb2.HealthCheckResponse.SERVING, within=20)
        assert httpx.get(ready_url, timeout=10).status_code == 200
        created = stub.CreateResource(resource_pb2.CreateResourceRequest(key=prefix, value=b"v"), timeout=10)
        assert created.version == 1
    recovered = [r for r in _records(server) if r.get("event") == "database reachable again"]
    assert len(recovered) == 1
    assert recovered[0]["level"] == "info"


def test_the_store_available_metric_follows_the_database(
    server_factory: ServerFactory, proxy: DatabaseProxy
) -> None:
    """`lockservice_store_available`, which the alert LockserviceStoreUnavailable reads, turns 0
    with the health status and back to 1 with it (one listener call sets both)."""
    metrics_port = free_port()
    server = _outage_server(server_factory, proxy, "--metrics-listen", f"127.0.0.1:{metrics_port}")
    assert scrape(metrics_port)["lockservice_store_available", ()] == 1
    proxy.cut()
    try:
        _wait_for_health(server.address, health_pb2.HealthCheckResponse.NOT_SERVING, within=10)
        assert scrape(metrics_port)["lockservice_store_available", ()] == 0
    finally:
        proxy.restore()
    _wait_for_health(server.address, health_pb2.HealthCheckResponse.SERVING, within=20)
    assert scrape(metrics_port)["lockservice_store_available", ()] == 1
    assert server.stop() == 0


def test_a_waiter_whose_lock_arrived_while_its_replica_lost_the_database_gets_it_on_reconnect(
    server_factory: ServerFactory, proxy: DatabaseProxy, prefix: str
) -> None:
    """The hand-over commits on a replica that can reach PostgreSQL while the waiter's replica
    cannot: the NOTIFY that would wake the waiter is lost with its listening connection. Once
    that connection is back, the replica checks its waits against the database and the waiter
    gets the lock then, not when its own wait times out (30 s here)."""
    database = server_factory(name="database")
    direct = server_factory(store_url=database.store_url).start()
    cut_off = server_factory(store_url=proxy.route(database.store_url)).start()
    name = f"{prefix}/lock"
    with grpc.insecure_channel(direct.address) as a, grpc.insecure_channel(cut_off.address) as b:
        locks_a, locks_b = lock_pb2_grpc.LockServiceStub(a), lock_pb2_grpc.LockServiceStub(b)
        held = locks_a.AcquireLock(lock_pb2.AcquireLockRequest(name=name, ttl_seconds=60), timeout=10)
        waiter = locks_b.AcquireLock.future(
            lock_pb2.AcquireLockRequest(
                name=name, ttl_seconds=60, holder="b", wait_timeout=Duration(seconds=30)
            ),
            timeout=40,
        )
        deadline = time.monotonic() + 10
        while locks_a.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10).waiters != 1:
            assert time.monotonic() < deadline, "the waiter never queued"
            time.sleep(0.01)
        time.sleep(0.5)  # the queuing commit's answer has reached the cut-off replica
        proxy.cut()
        locks_a.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=held.token), timeout=10)
        time.sleep(1.0)  # the hand-over's NOTIFY has gone out to nobody on the cut-off replica
        proxy.restore()
        restored_at = time.monotonic()
        acquired = waiter.result(timeout=35)
        assert time.monotonic() - restored_at < 10
        assert (acquired.holder, acquired.token) == ("b", held.token + 1)
