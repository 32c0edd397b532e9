"""`--reuse-port`: several server processes on one port, the kernel spreading the connections.

PostgreSQL-specific by nature: SQLite serves one process per file (the flag is refused with it).
"""

from __future__ import annotations

import time

import grpc
import httpx
import pytest

from bench.ports import free_port
from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.ops_support import log_records
from tests.e2e.support import ServerFactory

pytestmark = pytest.mark.backend_specific(
    "postgres", reason="processes sharing a port share a PostgreSQL database"
)


def on_port(server: ServerProcess, port: int) -> ServerProcess:
    server.port, server.address = port, f"127.0.0.1:{port}"
    return server


def wait_serving_log(server: ServerProcess, timeout: float = 30.0) -> None:
    """Waits for this process's own "serving" line: a health check on a shared port may be
    answered by the other process."""
    deadline = time.monotonic() + timeout
    while not log_records(server, "serving"):
        assert server.process is not None
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.logs()}")
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.05)


def test_two_processes_with_reuse_port_serve_one_grpc_and_one_http_port(
    server_factory: ServerFactory, prefix: str
) -> None:
    port, http_port = free_port(), free_port()
    args = ["--reuse-port", "--http-listen", f"127.0.0.1:{http_port}"]
    first = on_port(server_factory(args, name="shared"), port).start()
    second = on_port(server_factory(args, name="shared", store_url=first.store_url), port).launch()
    wait_serving_log(second)

    # Each channel of its own subchannel pool is a new connection, which the kernel gives to
    # either process; 40 of them all landing on one process would be a 1 in 2**39 chance.
    keys = [f"{prefix}/k{index}" for index in range(40)]
    for key in keys:
        with grpc.insecure_channel(first.address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            created = resource_pb2_grpc.ResourceServiceStub(channel).CreateResource(
                resource_pb2.CreateResourceRequest(key=key, value=b"v"), timeout=10
            )
            assert created.version == 1
    answered = [
        {record["subject"] for record in log_records(server, "rpc") if record["method"] == "CreateResource"}
        for server in (first, second)
    ]
    assert answered[0] and answered[1], "one process answered every connection"
    assert (answered[0] | answered[1], answered[0] & answered[1]) == (set(keys), set())

    # The HTTP port is shared the same way; every process sees every write (one database).
    for _ in range(10):
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as http:
            read = http.get(f"/v1/resources/{keys[0]}")
            assert (read.status_code, read.content) == (200, b"v")
    assert (first.stop(), second.stop()) == (0, 0)


def test_without_reuse_port_a_second_process_on_the_port_exits_1(server_factory: ServerFactory) -> None:
    first = server_factory(name="alone").start()
    second = on_port(server_factory(name="alone", store_url=first.store_url), first.port).launch()
    assert second.process is not None
    assert second.process.wait(timeout=30) == 1
    (record,) = log_records(second, "cannot listen")
    assert record["listen"] == first.address
    assert first.stop() == 0
