"""The suite's own `ServerProcess`: a port that `free_port()` offered but another process took
before the server bound it does not fail the test (in many xdist workers this happened)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

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
