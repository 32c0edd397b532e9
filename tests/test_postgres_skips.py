"""A run without PostgreSQL says so: one probe for the whole session, however the database
fails to answer, and a banner at the end naming how many PostgreSQL tests were skipped."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import closed_port

# Runs pytest itself in subprocesses and waits out one connect timeout: not for `make test-fast`.
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
# Three PostgreSQL variants of store-contract tests: each asks `require_postgres` first.
SELECTION = ["tests/store/contract/test_answers.py", "-m", "postgres", "-k", "answer"]


class HungPostgres:
    """A port that accepts connections and never answers: PostgreSQL hung, or a firewall that
    swallows packets. Counts the connections, so a test can tell how often it was probed."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(conn)

    @property
    def connections(self) -> int:
        return len(self._held)

    def close(self) -> None:
        self._listener.close()
        for conn in self._held:
            conn.close()
        self._thread.join(timeout=5)


@pytest.fixture
def hung_postgres() -> Iterator[HungPostgres]:
    server = HungPostgres()
    yield server
    server.close()


def _run_pytest(admin_url: str, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["LOCKSERVICE_TEST_POSTGRES"] = admin_url
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *SELECTION],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_hung_postgres_is_probed_once_and_the_run_ends_with_a_banner(hung_postgres: HungPostgres) -> None:
    url = f"postgresql://postgres@127.0.0.1:{hung_postgres.port}/postgres"
    result = _run_pytest(url, ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = int(re.search(r"(\d+) skipped", result.stdout).group(1))  # type: ignore[union-attr]
    assert skipped >= 3
    assert re.search(rf"!+ {skipped} PostgreSQL tests SKIPPED !+", result.stdout), result.stdout
    banner = f"PostgreSQL is not reachable at {url}: this run did NOT test the PostgreSQL backend."
    assert banner in result.stdout
    assert "LOCKSERVICE_TEST_POSTGRES" in result.stdout.split("PostgreSQL tests SKIPPED", 1)[1]
    assert hung_postgres.connections == 1


def test_in_ci_an_unreachable_postgres_fails_the_run_instead() -> None:
    with closed_port() as port:
        result = _run_pytest(f"postgresql://postgres@127.0.0.1:{port}/postgres", ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = int(re.search(r"(\d+) errors in", result.stdout).group(1))  # type: ignore[union-attr]
    assert errors >= 3
    assert "in CI every PostgreSQL test must run" in result.stdout
    assert "PostgreSQL tests SKIPPED" not in result.stdout
