"""Fixtures for the client's tests: the repository's real servers (tests/conftest.py), and clients.

Run from the repository root (`python -m pytest clients/python/tests`), so that `tests.conftest`
is importable. The client sees only the wire, so its tests run against the default SQLite
backend; every backend's behaviour is covered by tests/e2e.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lockservice_client import Client
from tests.conftest import ServerProcess, _shared_workdir, prefix, server, server_factory

__all__ = ["_shared_workdir", "backend", "client", "prefix", "server", "server_factory"]


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected
