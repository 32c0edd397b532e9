"""`bench.ports`: the loopback ports that the suite's and the bench's servers listen on stay out
of the kernel's ephemeral range, are not offered twice, and differ between xdist workers."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bench.ports import free_port, port_block


def _ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_an_outgoing_connections_port_cannot_be_listened_on() -> None:
    """Why ports from the ephemeral range fail: a connection's local port blocks a listener, so
    a port from bind(0) can be taken by any client before the server binds it (CI: "server for
    127.0.0.1:60357 exited with 1")."""
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        socket.create_connection(listener.getsockname()) as client,
    ):
        port = client.getsockname()[1]
        assert port in _ephemeral_range()
        with socket.socket() as server, pytest.raises(OSError, match="Address already in use"):
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))


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
