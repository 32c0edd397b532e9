"""Watch end to end: every change once, in revision order, resumable, bounded for slow readers."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from lockservice.v1 import lease_pb2, lease_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.support import ServerFactory, create, update
from tests.grpc_errors import decode

PUT, DELETE, EXPIRE = (
    resource_pb2.WatchEvent.PUT,
    resource_pb2.WatchEvent.DELETE,
    resource_pb2.WatchEvent.EXPIRE,
)


class WatchReader:
    """Drains a Watch stream on a thread so the test can wait for responses with a timeout."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.responses: queue.Queue[resource_pb2.WatchResponse | grpc.RpcError] = queue.Queue()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            for response in self.stream:
                self.responses.put(response)
        except grpc.RpcError as error:
            self.responses.put(error)

    def next(self, timeout: float = 10.0) -> resource_pb2.WatchResponse:
        item = self.responses.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def events(self, count: int, timeout: float = 10.0) -> list[resource_pb2.WatchEvent]:
        found: list[resource_pb2.WatchEvent] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            found.extend(self.next(timeout=max(0.01, deadline - time.monotonic())).events)
        assert len(found) == count, f"expected {count} events, got {len(found)}"
        return found

    def error(self, timeout: float = 10.0) -> grpc.RpcError:
        deadline = time.monotonic() + timeout
        while True:
            item = self.responses.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(item, grpc.RpcError):
                return item

    def close(self) -> None:
        self.stream.cancel()
        self._thread.join(timeout=10)


@contextmanager
def watching(resources: resource_pb2_grpc.ResourceServiceStub, **fields: object) -> Iterator[WatchReader]:
    reader = WatchReader(resources.Watch(resource_pb2.WatchRequest(**fields), timeout=60))  # type: ignore[arg-type]
    try:
        yield reader
    finally:
        reader.close()


def _summary(events: list[resource_pb2.WatchEvent]) -> list[tuple[int, str, int, bytes]]:
    return [(e.type, e.resource.key, e.resource.version, e.resource.value) for e in events]


def test_watch_delivers_every_change_once_in_order(
    resources: resource_pb2_grpc.ResourceServiceStub, leases: lease_pb2_grpc.LeaseServiceStub, prefix: str
) -> None:
    with watching(resources, key=f"{prefix}/", prefix=True) as reader:
        established = reader.next()
        assert list(established.events) == []
        a = create(resources, f"{prefix}/a", b"1")
        assert a.mod_revision > established.revision
        update(resources, f"{prefix}/a", b"2", expected_version=1)
        resources.Transact(
            resource_pb2.TransactRequest(
                operations=[
                    resource_pb2.Operation(put=resource_pb2.PutOperation(key=f"{prefix}/b", value=b"3")),
                    resource_pb2.Operation(delete=resource_pb2.DeleteOperation(key=f"{prefix}/a")),
                ]
            ),
            timeout=10,
        )
        lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=1), timeout=10)
        resources.CreateResource(
            resource_pb2.CreateResourceRequest(key=f"{prefix}/eph", value=b"4", lease_id=lease.lease_id),
            timeout=10,
        )
        create(resources, "elsewhere-" + prefix, b"not watched")
        events = reader.events(6)
        assert _summary(events) == [
            (PUT, f"{prefix}/a", 1, b"1"),
            (PUT, f"{prefix}/a", 2, b"2"),
            (PUT, f"{prefix}/b", 1, b"3"),
            (DELETE, f"{prefix}/a", 2, b"2"),
            (PUT, f"{prefix}/eph", 1, b"4"),
            (EXPIRE, f"{prefix}/eph", 1, b"4"),
        ]
        revisions = [e.revision for e in events]
        assert revisions[0] == a.mod_revision
        assert revisions[2] == revisions[3], "a transaction is one revision"
        assert revisions == sorted(revisions)
        assert reader.responses.empty()


def test_watch_resumes_from_a_revision(resources: resource_pb2_grpc.ResourceServiceStub, prefix: str) -> None:
    key = f"{prefix}/k"
    first = create(resources, key, b"0")
    for i in range(1, 5):
        update(resources, key, str(i).encode())
    with watching(resources, key=key, start_revision=first.mod_revision + 1) as reader:
        assert reader.next().events == []
        replayed = reader.events(4)
        assert [e.resource.version for e in replayed] == [2, 3, 4, 5]
        update(resources, key, b"live")
        (live,) = reader.events(1)
        assert (live.resource.version, live.resource.value) == (6, b"live")
        assert live.revision > replayed[-1].revision


def test_a_key_watch_sees_only_that_key(
    resources: resource_pb2_grpc.ResourceServiceStub, prefix: str
) -> None:
    with watching(resources, key=f"{prefix}/a") as reader:
        reader.next()
        create(resources, f"{prefix}/ab", b"x")
        create(resources, f"{prefix}/a", b"y")
        (event,) = reader.events(1)
        assert (event.resource.key, event.resource.value) == (f"{prefix}/a", b"y")


def test_concurrent_writes_reach_the_watcher_once_each_in_order(
    server: ServerProcess, resources: resource_pb2_grpc.ResourceServiceStub, prefix: str
) -> None:
    acknowledged: list[int] = []
    guard = threading.Lock()

    def writer(index: int) -> None:
        with grpc.insecure_channel(server.address) as channel:
            stub = resource_pb2_grpc.ResourceServiceStub(channel)
            for i in range(40):
                done = stub.UpdateResource(
                    resource_pb2.UpdateResourceRequest(
                        key=f"{prefix}/w{index}", value=str(i).encode(), allow_missing=True
                    ),
                    timeout=10,
                )
                with guard:
                    acknowledged.append(done.mod_revision)

    with watching(resources, key=f"{prefix}/", prefix=True) as reader:
        reader.next()
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        events = reader.events(160, timeout=30)
    assert [e.revision for e in events] == sorted(acknowledged)
    for index in range(4):
        versions = [e.resource.version for e in events if e.resource.key == f"{prefix}/w{index}"]
        assert versions == list(range(1, 41))


def test_a_compacted_start_revision_is_out_of_range(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory(["--watch-history", "5"]).start()
    with grpc.insecure_channel(server.address) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        for i in range(120):
            stub.UpdateResource(
                resource_pb2.UpdateResourceRequest(
                    key=f"{prefix}/k", value=str(i).encode(), allow_missing=True
                ),
                timeout=10,
            )
        stream = stub.Watch(resource_pb2.WatchRequest(key=f"{prefix}/k", start_revision=1), timeout=10)
        try:
            next(iter(stream))
        except grpc.RpcError as error:
            failure = decode(error)
        else:
            raise AssertionError("a compacted revision must be refused")
        assert (failure.code, failure.reason) == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED")
        oldest = int(failure.metadata["oldest_revision"])
        assert 100 <= oldest <= 116
        assert failure.message == f"revision 1 is compacted; the oldest retained revision is {oldest}"
        # From the oldest retained revision on, the replay works and ends at the last write.
        with watching(stub, key=f"{prefix}/k", start_revision=oldest) as reader:
            reader.next()
            replayed = reader.events(120 - oldest + 1)
            assert replayed[-1].resource.value == b"119"


def test_a_slow_watcher_is_cut_off_instead_of_buffering_without_bound(
    server_factory: ServerFactory, prefix: str
) -> None:
    server = server_factory(["--watch-queue-size", "8"]).start()
    with grpc.insecure_channel(server.address) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        stream = stub.Watch(resource_pb2.WatchRequest(key=f"{prefix}/", prefix=True), timeout=60)
        iterator = iter(stream)
        next(iterator)  # established; now read nothing while the writes pile up
        big = b"x" * 16_384
        for i in range(300):
            stub.UpdateResource(
                resource_pb2.UpdateResourceRequest(
                    key=f"{prefix}/k", value=big + str(i).encode(), allow_missing=True
                ),
                timeout=10,
            )
        received = 0
        try:
            for _ in iterator:
                received += 1
        except grpc.RpcError as error:
            failure = decode(error)
        else:
            raise AssertionError("the slow watcher must be cut off")
        assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LIMIT_EXCEEDED")
        assert "fell more than 8 responses behind" in failure.message
        assert received < 300
