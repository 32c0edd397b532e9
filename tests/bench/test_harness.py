"""The bench's server processes (`bench.harness.Servers`) start on a port nobody else can take
meanwhile, and say why when they cannot start. A CI run's `--scale` smoke test failed with
"server for 127.0.0.1:60357 exited with 1" and nothing more: the port came from bind(0), the
kernel's ephemeral range, which every outgoing connection of the parallel suite draws from."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import harness
from bench.harness import Backend, Servers
from bench.ports import free_port

pytestmark = pytest.mark.e2e


def _ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_an_outgoing_connections_port_cannot_be_listened_on() -> None:
    """Why ports from the ephemeral range fail: a connection's local port blocks a listener."""
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
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert [port for port in ports if port in _ephemeral_range()] == []


def _ports_from(first: int) -> Iterator[int]:
    """`first`, then free ports."""
    yield first
    while True:
        yield free_port()


def test_a_server_whose_port_was_taken_meanwhile_starts_on_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        ports = _ports_from(taken.getsockname()[1])
        monkeypatch.setattr(harness, "free_port", lambda: next(ports))
        with Servers(Backend("sqlite")) as servers:
            [target] = servers.targets
            assert target != f"127.0.0.1:{taken.getsockname()[1]}"
            assert '"event": "cannot listen"' in servers.logs()


def test_a_server_that_cannot_start_is_reported_with_its_log(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        monkeypatch.setattr(harness, "free_port", lambda: port)
        with pytest.raises(RuntimeError) as raised, Servers(Backend("sqlite")):
            pass
    message = str(raised.value)
    assert message.startswith(f"server for 127.0.0.1:{port} exited with 1 (tried 3 ports); its log:\n")
    assert '"event": "cannot listen"' in message
    assert f"Failed to bind to address 127.0.0.1:{port}" in message
