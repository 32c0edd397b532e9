"""Failover of the database under load: the primary is killed (-9) and its synchronous standby
promoted while clients create keys, compare-and-set a counter and hand a lock around with fenced
writes. Nothing acknowledged is lost, fencing tokens keep increasing, the lock never has two
holders, and every call during the switch answers UNAVAILABLE (or succeeds) within its deadline;
the same two lockservice replicas serve on the promoted standby, found through their multi-host
URL.

PostgreSQL-specific: the test is about PostgreSQL's replication and libpq's multi-host
connection strings; SQLite has one file and no standby. The pair is the test's own (tests/e2e/
pg_pair.py): the machine's shared PostgreSQL server is not touched.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg.conninfo import conninfo_to_dict

from lockservice.v1 import lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.failover_load import CALL_SECONDS, Calls, Grant, create_loop, increment_loop, lock_loop
from tests.e2e.pg_pair import PostgresPair, server_binaries
from tests.e2e.support import ServerFactory, expect_failure

pytestmark = pytest.mark.backend_specific(
    "postgres", reason="PostgreSQL replication and multi-host URLs; SQLite has no standby"
)

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
OPERATIONS = ("create", "get", "cas", "acquire", "fenced-write", "release")


@pytest.fixture
def pair() -> Iterator[PostgresPair]:
    binaries = server_binaries()
    if binaries is None:
        message = "no PostgreSQL server binaries under /usr/lib/postgresql"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: in CI the failover test must run")
        pytest.skip(message)
    started = PostgresPair(binaries)
    try:
        yield started.start()
    finally:
        started.close()


def _health(health: health_pb2_grpc.HealthStub) -> int:
    status: int = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    return status


def _await(condition: Callable[[], bool], within: float, what: str) -> None:
    give_up = time.monotonic() + within
    while not condition():
        assert time.monotonic() < give_up, f"not within {within} s: {what}"
        time.sleep(0.05)


def test_a_promoted_standby_has_every_acknowledged_write_and_token(
    backend: str, pair: PostgresPair, server_factory: ServerFactory, prefix: str
) -> None:
    url = pair.create_database("lockservice")
    # Two replicas: lock hand-overs cross between them through NOTIFY, which the failover cuts.
    servers = [
        server_factory(["--history-versions", "10000"], name=f"replica{n}", store_url=url) for n in range(2)
    ]
    for server in servers:
        server.launch()
    for server in servers:
        server.wait_ready(20)
    counter, mutex = f"{prefix}/counter", f"{prefix}/mutex"
    calls = Calls()
    with contextlib.ExitStack() as stack:
        channels = [stack.enter_context(grpc.insecure_channel(server.address)) for server in servers]
        resources = resource_pb2_grpc.ResourceServiceStub(channels[0])
        healths = [health_pb2_grpc.HealthStub(channel) for channel in channels]
        resources.CreateResource(resource_pb2.CreateResourceRequest(key=counter, value=b"start"), timeout=10)
        threads = [calls.run(create_loop, channels[n % 2], f"{prefix}/created/{n}") for n in range(2)]
        threads += [calls.run(increment_loop, channels[n % 2], counter, f"writer{n}") for n in range(2)]
        threads += [
            calls.run(lock_loop, channels[n % 2], mutex, f"holder{n}", f"{prefix}/fenced") for n in range(3)
        ]
        clients = len(threads)

        def every_operation_succeeded(after: float) -> bool:
            return calls.stop.is_set() or all(calls.successes(op, after) >= 3 for op in OPERATIONS)

        def health_of_all(status: int) -> Callable[[], bool]:
            return lambda: all(_health(health) == status for health in healths)

        _await(lambda: every_operation_succeeded(0.0), 20, "load running on the primary")
        killed = time.monotonic()
        pair.kill_primary()
        # Promote once the clients have seen the primary gone twice each on average: a broken
        # connection first, then a wait for a new one that ends at the call's deadline. (A real
        # failover manager takes longer to decide; the calls answer the same meanwhile.)
        _await(lambda: calls.stop.is_set() or calls.unavailable(killed) >= 2 * clients, 15, "calls refused")
        _await(health_of_all(NOT_SERVING), 10, "health NOT_SERVING")
        pair.promote_standby()
        promoted = time.monotonic()
        _await(lambda: every_operation_succeeded(promoted), 20, "load running on the promoted standby")
        _await(health_of_all(SERVING), 10, "health SERVING again")
        calls.stop.set()
        for thread in threads:
            thread.join(timeout=3 * CALL_SECONDS)
            assert not thread.is_alive()
        assert calls.errors == [], "\n".join(server.logs()[-3000:] for server in servers)
        for server in servers:  # never restarted
            assert server.process is not None and server.process.poll() is None

        _report(calls, killed, promoted)
        _check_calls(calls, killed)
        _check_writes(calls, resources, counter)
        _check_grants(calls.grants, killed, promoted, lock_pb2_grpc.LockServiceStub(channels[1]), mutex)
        for grant in (grant for grant in calls.grants if grant.written):  # accepted under its token
            written = resources.GetResource(
                resource_pb2.GetResourceRequest(key=f"{prefix}/fenced/{grant.token}"), timeout=10
            )
            assert written.value == grant.holder.encode()


def _report(calls: Calls, killed: float, promoted: float) -> None:
    """What clients saw, on stdout (pytest -s): how long the switch refused calls."""
    refused = [o for o in calls.outcomes if o.code == grpc.StatusCode.UNAVAILABLE]
    recovered = min(o.ended for o in calls.outcomes if o.code == grpc.StatusCode.OK and o.started >= promoted)
    print(
        f"\nfailover: {len(calls.outcomes)} calls, {len(refused)} UNAVAILABLE, slowest answered in "
        f"{max(o.ended - o.started for o in refused):.2f} s; kill to promotion {promoted - killed:.2f} s; "
        f"promotion to the first success {recovered - promoted:.2f} s"
    )


def _check_calls(calls: Calls, killed: float) -> None:
    """Every call answered within its deadline, and the switch was seen as UNAVAILABLE."""
    assert max(o.ended - o.started for o in calls.outcomes) < CALL_SECONDS
    refused = [o for o in calls.outcomes if o.code == grpc.StatusCode.UNAVAILABLE]
    assert refused, "no call saw the primary gone"
    assert all(o.reason == "STORE_UNAVAILABLE" and o.ended >= killed for o in refused)


def _check_writes(calls: Calls, resources: resource_pb2_grpc.ResourceServiceStub, counter: str) -> None:
    """Every acknowledged create and compare-and-set is in the promoted standby's database."""
    assert calls.created
    for key, value in calls.created.items():
        assert resources.GetResource(resource_pb2.GetResourceRequest(key=key), timeout=10).value == value
    versions = [version for version, _ in calls.increments]
    assert len(versions) == len(set(versions)), "two compare-and-sets acknowledged for one version"
    latest = resources.GetResource(resource_pb2.GetResourceRequest(key=counter), timeout=10)
    assert latest.version >= max(versions)
    for version, value in calls.increments:
        kept = resources.GetResource(
            resource_pb2.GetResourceRequest(key=counter, version=version), timeout=10
        )
        assert kept.value == value


def _check_grants(
    grants: list[Grant], killed: float, promoted: float, locks: lock_pb2_grpc.LockServiceStub, mutex: str
) -> None:
    """One holder at a time, tokens increasing in grant order, and none reissued after promotion."""
    in_order = sorted(grants, key=lambda grant: grant.granted)
    for earlier, later in itertools.pairwise(in_order):
        assert earlier.releasing <= later.granted, f"two holders at once: {earlier} and {later}"
        assert earlier.token < later.token, f"token went back: {earlier} then {later}"
    before = [grant.token for grant in grants if grant.granted < killed]
    after = [grant.token for grant in grants if grant.granted > promoted]
    assert before and after
    assert min(after) > max(before)
    lock = locks.GetLock(lock_pb2.GetLockRequest(name=mutex), timeout=10)
    assert lock.token >= max(grant.token for grant in grants)


def test_a_write_waiting_for_a_lost_synchronous_standby_answers_unavailable_in_time(
    backend: str, pair: PostgresPair, server_factory: ServerFactory, prefix: str
) -> None:
    server = server_factory(store_url=pair.create_database("lockservice")).start()
    key = f"{prefix}/k"
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        pair.stop_standby()
        # The primary commits locally, then waits for the standby's flush: the caller is answered
        # at its deadline, with the outcome unknown, and the write stays invisible meanwhile.
        request = resource_pb2.CreateResourceRequest(key=key, value=b"v", request_id="write-1")
        started = time.monotonic()
        failure = expect_failure(
            resources.CreateResource, request, grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE", timeout=2.0
        )
        assert time.monotonic() - started < 2.0
        assert "retry with the same request_id" in failure.message
        pair.start_standby()
        # Replicated now: the retry is answered with the write's own outcome.
        created = resources.CreateResource(request, timeout=10)
        assert (created.key, created.value, created.version) == (key, b"v", 1)


def _keepalive_seconds(pid: int, port: str) -> list[float]:
    """The keepalive timer of each TCP connection process `pid` holds to `port` (from ss)."""
    listing = subprocess.run(
        ["ss", "-tnpo", "state", "established"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    units = {"ms": 0.001, "sec": 1.0, "min": 60.0}
    timers = []
    for line in listing.splitlines():
        if f"pid={pid}," in line and f":{port} " in line:
            match = re.search(r"timer:\(keepalive,([\d.]+)(ms|sec|min),", line)
            if match:
                timers.append(float(match.group(1)) * units[match.group(2)])
            elif "timer:(" not in line:  # no timer at all: keepalives are off
                timers.append(float("inf"))
            # else another timer runs now (a retransmission): this socket tells nothing now
    return timers


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read socket timers")
def test_connections_probe_a_silent_database_within_seconds(backend: str, server: ServerProcess) -> None:
    """A primary whose machine vanished answers nothing; a kill -9 cannot play that, so this
    reads what the kernel will do: every connection (the pool's, LISTEN's) sends its first
    keepalive within 5 s of silence, not the system's default 2 hours."""
    assert server.process is not None
    timers = _keepalive_seconds(
        server.process.pid, str(conninfo_to_dict(server.store_url).get("port") or 5432)
    )
    assert len(timers) >= 2  # the pool's first connection and the LISTEN connection
    assert max(timers) <= 5.0, timers
