"""The bench's server processes (`bench.harness.Servers`) start on a port nobody else can take
meanwhile, and say why when they cannot start. A CI run's `--scale` smoke test failed with
"server for 127.0.0.1:60357 exited with 1" and nothing more: the port came from bind(0), the
kernel's ephemeral range, which every outgoing connection of the parallel suite draws from."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from bench import harness
from bench.harness import Backend, Servers
from bench.ports import free_port

pytestmark = pytest.mark.e2e


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
