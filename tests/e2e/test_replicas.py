"""Several replicas over one PostgreSQL database: the same guarantees as one server.

PostgreSQL-specific by nature: SQLite serves one process per file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess, recycle_database, require_postgres
from tests.e2e.db_proxy import DatabaseProxy
from tests.e2e.support import ServerFactory, expect_failure, get
from tests.e2e.test_watch import watching
from tests.grpc_errors import decode

pytestmark = pytest.mark.backend_specific("postgres", reason="replicas share a PostgreSQL database")


@pytest.fixture
def replicas(server_factory: ServerFactory) -> list[ServerProcess]:
    """Three replicas of the test's own, for a test that kills one."""
    first = server_factory(name="replica").start()
    others = [server_factory(name="replica", store_url=first.store_url).start() for _ in range(2)]
    return [first, *others]


@pytest.fixture(scope="module")
def shared_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    """Three replicas shared by the module's tests that neither kill nor cut anything: each
    writes under its own `prefix`, so they stay independent without starting three servers
    each."""
    require_postgres()
    workdir = tmp_path_factory.mktemp("replicas")
    first = ServerProcess(workdir / "0", "postgres")
    group = [first] + [ServerProcess(workdir / str(i), "postgres", store_url=first.store_url) for i in (1, 2)]
    try:
        for server in group:
            server.workdir.mkdir()
            server.start()
        yield group
    finally:
        for server in group:
            if server.process is not None and server.process.poll() is None:
                server.stop()
        recycle_database(first.store_url)


def _stubs(
    address: str,
) -> tuple[grpc.Channel, resource_pb2_grpc.ResourceServiceStub, lock_pb2_grpc.LockServiceStub]:
    channel = grpc.insecure_channel(address)
    return channel, resource_pb2_grpc.ResourceServiceStub(channel), lock_pb2_grpc.LockServiceStub(channel)


def test_replicas_started_at_once_on_an_empty_database_all_serve(
    server_factory: ServerFactory, prefix: str
) -> None:
    first = server_factory(name="replica")
    group = [first] + [server_factory(name="replica", store_url=first.store_url) for _ in range(2)]
    for server in group:
        server.launch()  # all three race to create the schema
    for server in group:
        server.wait_ready(30)
    for index, server in enumerate(group):
        _, resources, _ = _stubs(server.address)
        created = resources.CreateResource(
            resource_pb2.CreateResourceRequest(key=f"{prefix}/r{index}", value=b"x"), timeout=10
        )
        assert created.mod_revision == index + 1


def test_contending_cas_across_replicas_loses_no_update(
    shared_replicas: list[ServerProcess], prefix: str
) -> None:
    key = f"{prefix}/counter"
    _, resources, _ = _stubs(shared_replicas[0].address)
    resources.CreateResource(resource_pb2.CreateResourceRequest(key=key, value=b"0"), timeout=10)
    successes = 0
    unexpected: list[str] = []
    guard = threading.Lock()

    def incrementer(index: int) -> None:
        nonlocal successes
        with grpc.insecure_channel(shared_replicas[index % 3].address) as channel:
            stub = resource_pb2_grpc.ResourceServiceStub(channel)
            done = 0
            for _ in range(200):
                if done == 3:
                    break
                current = stub.GetResource(resource_pb2.GetResourceRequest(key=key), timeout=10)
                try:
                    stub.CompareAndSet(
                        resource_pb2.CompareAndSetRequest(
                            key=key,
                            expected_version=current.version,
                            value=str(int(current.value) + 1).encode(),
                        ),
                        timeout=10,
                    )
                except grpc.RpcError as error:
                    failure = decode(error)
                    if failure.reason != "VERSION_MISMATCH":
                        with guard:
                            unexpected.append(f"{failure.code} {failure.reason} {failure.message}")
                    continue
                done += 1
                with guard:
                    successes += 1

    threads = [threading.Thread(target=incrementer, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert unexpected == []
    final = get(resources, key)
    assert successes == 72
    assert (int(final.value), final.version) == (72, 73)


def test_lock_contenders_across_replicas_never_overlap(
    shared_replicas: list[ServerProcess], prefix: str
) -> None:
    name = f"{prefix}/hot"
    inside = overlaps = 0
    tokens: list[int] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def contender(index: int) -> None:
        nonlocal inside, overlaps
        with grpc.insecure_channel(shared_replicas[index % 3].address) as channel:
            stub = lock_pb2_grpc.LockServiceStub(channel)
            try:
                for _ in range(3):
                    lock = stub.AcquireLock(
                        lock_pb2.AcquireLockRequest(
                            name=name, ttl_seconds=30, wait_timeout=Duration(seconds=60)
                        ),
                        timeout=90,
                    )
                    with guard:
                        inside += 1
                        overlaps += inside > 1
                        tokens.append(lock.token)
                    time.sleep(0.002)
                    with guard:
                        inside -= 1
                    stub.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=lock.token), timeout=30)
            except BaseException as error:  # reported by the main thread
                errors.append(error)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(18)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert overlaps == 0
    assert sorted(tokens) == list(range(1, 55))


def test_a_release_on_one_replica_wakes_a_waiter_on_another_at_once(
    shared_replicas: list[ServerProcess], prefix: str
) -> None:
    name = f"{prefix}/wake"
    _, _, locks_a = _stubs(shared_replicas[0].address)
    _, _, locks_b = _stubs(shared_replicas[1].address)
    held = locks_a.AcquireLock(lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30), timeout=10)
    waiter = locks_b.AcquireLock.future(
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30, holder="b", wait_timeout=Duration(seconds=30)),
        timeout=40,
    )
    deadline = time.monotonic() + 10
    while locks_a.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10).waiters != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    released_at = time.monotonic()
    locks_a.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=held.token), timeout=10)
    acquired = waiter.result(timeout=10)
    # Woken by NOTIFY, not by a poll (which would take up to a second).
    assert time.monotonic() - released_at < 0.5
    assert (acquired.holder, acquired.token) == ("b", held.token + 1)


def test_a_watch_on_one_replica_sees_every_replicas_writes_in_order(
    shared_replicas: list[ServerProcess], prefix: str
) -> None:
    _, watcher_stub, _ = _stubs(shared_replicas[2].address)
    acknowledged: list[int] = []
    guard = threading.Lock()

    def writer(index: int) -> None:
        with grpc.insecure_channel(shared_replicas[index % 2].address) as channel:
            stub = resource_pb2_grpc.ResourceServiceStub(channel)
            for i in range(25):
                done = stub.UpdateResource(
                    resource_pb2.UpdateResourceRequest(
                        key=f"{prefix}/w{index}", value=str(i).encode(), allow_missing=True
                    ),
                    timeout=10,
                )
                with guard:
                    acknowledged.append(done.mod_revision)

    with watching(watcher_stub, key=f"{prefix}/", prefix=True) as reader:
        reader.next()
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        events = reader.events(100, timeout=30)
    assert [e.revision for e in events] == sorted(acknowledged)
    # Resuming on another replica from a revision replays the same history.
    _, other_stub, _ = _stubs(shared_replicas[0].address)
    middle = events[50].revision
    with watching(other_stub, key=f"{prefix}/", prefix=True, start_revision=middle) as reader:
        reader.next()
        replayed = reader.events(50, timeout=30)
    assert [(e.revision, e.resource.key, e.resource.version) for e in replayed] == [
        (e.revision, e.resource.key, e.resource.version) for e in events[50:]
    ]


def test_a_killed_replica_loses_nothing_and_its_leases_expire_elsewhere(
    replicas: list[ServerProcess], prefix: str
) -> None:
    victim = replicas[1]
    with grpc.insecure_channel(victim.address) as channel:
        lease = lease_pb2_grpc.LeaseServiceStub(channel).GrantLease(
            lease_pb2.GrantLeaseRequest(ttl_seconds=2), timeout=10
        )
        resource_pb2_grpc.ResourceServiceStub(channel).CreateResource(
            resource_pb2.CreateResourceRequest(key=f"{prefix}/eph", value=b"x", lease_id=lease.lease_id),
            timeout=10,
        )
    acknowledged: dict[str, int] = {}
    guard = threading.Lock()
    stop = threading.Event()

    def writer(index: int) -> None:
        with grpc.insecure_channel(replicas[index % 3].address) as channel:
            stub = resource_pb2_grpc.ResourceServiceStub(channel)
            for i in range(10_000):
                if stop.is_set():
                    return
                try:
                    done = stub.UpdateResource(
                        resource_pb2.UpdateResourceRequest(
                            key=f"{prefix}/k{index}", value=str(i).encode(), allow_missing=True
                        ),
                        timeout=5,
                    )
                except grpc.RpcError:
                    if index % 3 == 1:
                        return  # this writer's replica is gone
                    raise
                with guard:
                    acknowledged[f"{prefix}/k{index}"] = done.version

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.8)
    victim.kill9()
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    with grpc.insecure_channel(replicas[0].address) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        for key, version in acknowledged.items():
            assert get(stub, key).version >= version
        # The dead replica's lease ends at its deadline, ended by a surviving replica.
        deadline = lease.expire_time.ToMicroseconds() / 1e6
        time.sleep(max(0.0, deadline - time.time()) + 0.5)
        expect_failure(
            stub.GetResource,
            resource_pb2.GetResourceRequest(key=f"{prefix}/eph"),
            grpc.StatusCode.NOT_FOUND,
            "RESOURCE_NOT_FOUND",
        )


def test_a_lost_database_answers_unavailable_and_recovers(
    server_factory: ServerFactory, proxy: DatabaseProxy, prefix: str
) -> None:
    direct = server_factory()
    url = proxy.route(direct.store_url)
    server = server_factory(store_url=url).start()
    with grpc.insecure_channel(server.address) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        stub.CreateResource(resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"1"), timeout=10)
        proxy.cut()
        for call, request in (
            (stub.GetResource, resource_pb2.GetResourceRequest(key=f"{prefix}/k")),
            (stub.UpdateResource, resource_pb2.UpdateResourceRequest(key=f"{prefix}/k", value=b"2")),
        ):
            failure = expect_failure(call, request, grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")
            assert "database" in failure.message
        proxy.restore()
        deadline = time.monotonic() + 15
        while True:
            try:
                updated = stub.UpdateResource(
                    resource_pb2.UpdateResourceRequest(key=f"{prefix}/k", value=b"3"), timeout=10
                )
                break
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE
                assert time.monotonic() < deadline, "the server did not recover"
                time.sleep(0.2)
        # The failed update was never applied: the next one is version 2.
        assert (updated.version, updated.value) == (2, b"3")


def test_a_page_token_from_one_replica_pages_on_another(
    shared_replicas: list[ServerProcess], prefix: str
) -> None:
    """The page-token secret lives in the database, so every replica of the store accepts it."""
    _, resources, _ = _stubs(shared_replicas[0].address)
    for name in ("a", "b", "c"):
        resources.CreateResource(
            resource_pb2.CreateResourceRequest(key=f"{prefix}/{name}", value=b"x"), timeout=10
        )
    token = resources.ListResources(
        resource_pb2.ListResourcesRequest(prefix=f"{prefix}/", page_size=1), timeout=10
    ).next_page_token
    for replica in shared_replicas[1:]:
        _, other, _ = _stubs(replica.address)
        page = other.ListResources(
            resource_pb2.ListResourcesRequest(prefix=f"{prefix}/", page_size=1, page_token=token), timeout=10
        )
        assert [r.key for r in page.resources] == [f"{prefix}/b"]
