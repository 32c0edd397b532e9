"""The disk under the SQLite file fills up while serving: writes answer UNAVAILABLE /
STORE_UNAVAILABLE saying so (and the log says it at error level), reads go on, health stays
SERVING (reads are served), and writes work again once space is freed.

SQLite-specific: the disk is a real 4 MiB tmpfs under the database; PostgreSQL's disk is its
own server's (a full one answers the same STORE_UNAVAILABLE through the connection error path).
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.e2e.mounts import fill, small_disk
from tests.e2e.support import ServerFactory
from tests.grpc_errors import decode

pytestmark = pytest.mark.backend_specific("sqlite", reason="the disk under the SQLite file is ours to fill")

_VALUE = b"x" * 32 * 1024


def test_a_full_disk_refuses_writes_and_keeps_reads(
    server_factory: ServerFactory, tmp_path: Path, prefix: str
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        server = server_factory(["--db", str(disk / "lockservice.db")])
        server.start()
        with grpc.insecure_channel(server.address) as channel:
            stub = resource_pb2_grpc.ResourceServiceStub(channel)
            kept = stub.CreateResource(
                resource_pb2.CreateResourceRequest(key=f"{prefix}/kept", value=b"v"), timeout=10
            )
            filler = fill(disk)
            # The WAL may still have room from earlier commits: write until the disk refuses.
            failure = None
            for index in range(200):
                try:
                    stub.CreateResource(
                        resource_pb2.CreateResourceRequest(key=f"{prefix}/{index}", value=_VALUE), timeout=10
                    )
                except grpc.RpcError as error:
                    failure = decode(error)
                    break
            assert failure is not None, "the full disk never refused a write"
            assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")
            assert failure.message.startswith("the store's disk is full"), failure.message
            assert failure.metadata == {"cause": "DISK_FULL"}
            # Reads go on, and so does health.
            read = stub.GetResource(resource_pb2.GetResourceRequest(key=f"{prefix}/kept"), timeout=10)
            assert (read.value, read.version) == (b"v", kept.version)
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            errors = [
                json.loads(line)
                for line in server.logs().splitlines()
                if line.startswith("{") and '"error"' in line
            ]
            assert [r["event"] for r in errors if r["level"] == "error"][:1] == ["the store's disk is full"]
            assert "SQLITE_FULL" in json.dumps(errors)
            filler.unlink()
            updated = stub.UpdateResource(
                resource_pb2.UpdateResourceRequest(key=f"{prefix}/kept", value=b"w"), timeout=10
            )
            assert (updated.value, updated.version) == (b"w", kept.version + 1)
        assert server.stop() == 0
        recovered = [line for line in server.logs().splitlines() if "writes succeed again" in line]
        assert len(recovered) == 1
