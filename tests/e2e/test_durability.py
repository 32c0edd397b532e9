"""An acknowledged write survives `kill -9`, and numbering carries on after the restart."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import grpc

from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.e2e.support import ServerFactory, create, get, update
from tests.grpc_errors import decode

WRITERS = 8
LOAD_SECONDS = 1.5


def value_for(key: str, version: int) -> bytes:
    return f"{key}@{version}".encode()


@dataclass
class WriterLog:
    key: str
    # Every acknowledged write: version -> the Resource the server answered.
    acked: dict[int, resource_pb2.Resource] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def write_until_failure(address: str, log: WriterLog, stop: threading.Event) -> None:
    """Creates `log.key`, then updates it with expected_version until the server goes away."""
    with grpc.insecure_channel(address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        version = 0
        while not stop.is_set():
            target = version + 1
            try:
                if version == 0:
                    written = create(resources, log.key, value_for(log.key, target))
                else:
                    written = update(resources, log.key, value_for(log.key, target), expected_version=version)
            except grpc.RpcError as error:
                code = error.code()
                if code != grpc.StatusCode.UNAVAILABLE:
                    failure = decode(error)
                    log.errors.append(f"{failure.code} {failure.reason}: {failure.message}")
                return
            assert written.version == target
            log.acked[target] = written
            version = target


def test_acknowledged_writes_survive_kill_9(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory().start()
    logs = [WriterLog(key=f"{prefix}/w{i}") for i in range(WRITERS)]
    stop = threading.Event()
    threads = [threading.Thread(target=write_until_failure, args=(server.address, log, stop)) for log in logs]
    for thread in threads:
        thread.start()
    time.sleep(LOAD_SECONDS)
    server.kill9()  # while every writer still has a write in flight
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)

    assert [error for log in logs for error in log.errors] == []
    assert all(log.acked for log in logs), "every writer got at least one acknowledgement"
    total = sum(len(log.acked) for log in logs)
    assert total >= WRITERS * 5, f"only {total} acknowledged writes: the load did not run"
    last_acked_revision = max(r.mod_revision for log in logs for r in log.acked.values())

    server.start()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        for log in logs:
            highest = max(log.acked)
            now = get(resources, log.key)
            # The last acknowledged write is there; at most the one write in flight when the
            # server died was applied on top of it without an acknowledgement.
            assert now.version in (highest, highest + 1), (log.key, highest, now.version)
            assert now.value == value_for(log.key, now.version)
            if now.version == highest:
                assert now == log.acked[highest]
            # Every acknowledged version still retained reads back exactly as acknowledged.
            for version in range(max(1, now.version - 9), highest + 1):
                assert get(resources, log.key, version=version) == log.acked[version]

        # Numbering carries on: version = last + 1, and the store revision keeps increasing.
        for log in logs:
            now = get(resources, log.key)
            after = update(resources, log.key, b"after", expected_version=now.version)
            assert after.version == now.version + 1
            assert after.create_revision == log.acked[1].create_revision
            assert after.mod_revision > last_acked_revision
            assert after.mod_revision > now.mod_revision
        fresh = create(resources, f"{prefix}/fresh", b"x")
        assert fresh.create_revision > last_acked_revision
