"""The suite's own `ServerProcess`: a port that `free_port()` offered but another process took
before the server bound it does not fail the test (in many xdist workers this happened)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bench.ports import free_port, port_block
from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e


def test_a_first_start_on_a_port_taken_meanwhile_moves_to_a_fresh_one(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        server = ServerProcess(tmp_path, "sqlite")
        server.port = taken.getsockname()[1]
        server.address = f"127.0.0.1:{server.port}"
        try:
            server.start()
            assert server.port != taken.getsockname()[1]
            assert '"event": "cannot listen"' in server.logs()
        finally:
            server.stop()


def test_a_restart_keeps_its_port_and_fails_if_it_is_taken(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "sqlite").start()
    port = server.port
    assert server.stop() == 0
    with socket.create_server(("127.0.0.1", port)), pytest.raises(RuntimeError, match="server exited with 1"):
        server.start()
    assert server.port == port


def _ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_free_ports_stay_out_of_the_ephemeral_range_and_do_not_repeat() -> None:
    """A port the kernel hands out for bind(0) or an outgoing connection can be taken again
    by any other test the moment a server stops: a restart on the same port then fails with
    "Address already in use" (a CI run failed so). Ports outside that range, handed out once
    each, cannot be."""
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert [port for port in ports if port in _ephemeral_range()] == []


def test_each_xdist_worker_draws_from_a_block_of_its_own() -> None:
    blocks = [port_block(f"gw{index}", 6) for index in range(6)]
    for index, block in enumerate(blocks):
        assert len(block) >= 500
        assert not set(block) & set(_ephemeral_range())
        for other in blocks[index + 1 :]:
            assert not set(block) & set(other)
    assert port_block("", 1) == port_block("gw0", 1)
