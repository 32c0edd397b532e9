"""Shared fixtures: real `lockservice serve` processes on real ports, and gRPC stubs to them.

Every end-to-end test runs once per storage backend (`backend` fixture); a test that is specific
to one backend says why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lockservice.v1 import lease_pb2_grpc, lock_pb2_grpc, resource_pb2_grpc
from tests.e2e.db_proxy import DatabaseProxy

LOCKSERVICE = str(Path(sys.executable).parent / "lockservice")
BACKENDS = ["sqlite", "postgres"]
POSTGRES_ADMIN_URL = os.environ.get(
    "LOCKSERVICE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_created_databases: list[str] = []


def _postgres_url(database: str) -> str:
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.encode())


def postgres_available() -> bool:
    try:
        _admin_execute("SELECT 1")
    except Exception:
        return False
    return True


def create_database() -> str:
    """A fresh, empty database of this test session's own; dropped when the session ends."""
    name = f"lockservice_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f"CREATE DATABASE {name}")
    _created_databases.append(name)
    return _postgres_url(name)


def _drop_databases() -> None:
    while _created_databases:
        _admin_execute(f"DROP DATABASE IF EXISTS {_created_databases.pop()} WITH (FORCE)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """One `lockservice serve` process; restartable on the same port and database."""

    def __init__(
        self, workdir: Path, backend: str, extra_args: list[str] | None = None, store_url: str = ""
    ) -> None:
        """`store_url` shares an existing PostgreSQL database (replicas); by default a postgres
        server gets a fresh database of its own."""
        self.workdir = workdir
        self.backend = backend
        self.store_url = store_url or (create_database() if backend == "postgres" else "")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.db = workdir / "lockservice.db"
        self.log_path = workdir / "server.log"
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        storage = ["--store", self.store_url] if self.store_url else ["--db", str(self.db)]
        return [
            LOCKSERVICE,
            "serve",
            "--listen",
            self.address,
            *storage,
            "--log-format",
            "json",
            *self.extra_args,
        ]

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> ServerProcess:
        """Starts the process without waiting for it to serve (for concurrent starts)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, and return the exit code (SIGKILL if it does not stop in time)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.backend_specific("sqlite", reason=...)` keeps a test to the backends it is
    about: the other backends' variants are deselected, not skipped (in CI a skipped PostgreSQL
    test is a failure, so nothing may be skipped quietly)."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("backend_specific")
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        if marker is not None and backend is not None and backend not in marker.args:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgres" and not postgres_available():
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: in CI every PostgreSQL test must run")
        pytest.skip(message)
    return name


@pytest.fixture
def server_factory(tmp_path: Path, backend: str) -> Iterator[type[ServerProcess] | object]:
    """Starts fresh servers for tests that kill or reconfigure them; stops them all afterwards."""
    started: list[ServerProcess] = []

    def make(extra_args: list[str] | None = None, name: str = "server", store_url: str = "") -> ServerProcess:
        workdir = tmp_path / f"{name}-{len(started)}"
        workdir.mkdir()
        server = ServerProcess(workdir, backend, extra_args, store_url)
        started.append(server)
        return server

    yield make
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


_shared_servers: dict[str, ServerProcess] = {}


@pytest.fixture(scope="session")
def _shared_workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("shared-server")
    yield path
    for server in _shared_servers.values():
        server.stop()
    _shared_servers.clear()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _postgres_databases() -> Iterator[None]:
    """Drops every database the session created, after every server using one has stopped."""
    yield
    if _created_databases:
        _drop_databases()


@pytest.fixture
def server(backend: str, _shared_workdir: Path) -> ServerProcess:
    """One long-lived server per backend, shared by the tests that need no special settings.

    Tests stay independent by writing under their own `prefix`.
    """
    existing = _shared_servers.get(backend)
    if existing is None or existing.process is None or existing.process.poll() is not None:
        workdir = _shared_workdir / backend
        workdir.mkdir(exist_ok=True)
        existing = ServerProcess(workdir, backend).start()
        _shared_servers[backend] = existing
    return existing


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of this test's own, so tests sharing a server never see each other's keys."""
    digest = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    return f"t-{digest}"


@pytest.fixture
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture
def resources(channel: grpc.Channel) -> resource_pb2_grpc.ResourceServiceStub:
    return resource_pb2_grpc.ResourceServiceStub(channel)


@pytest.fixture
def leases(channel: grpc.Channel) -> lease_pb2_grpc.LeaseServiceStub:
    return lease_pb2_grpc.LeaseServiceStub(channel)


@pytest.fixture
def locks(channel: grpc.Channel) -> lock_pb2_grpc.LockServiceStub:
    return lock_pb2_grpc.LockServiceStub(channel)


@pytest.fixture
def proxy() -> Iterator[DatabaseProxy]:
    """A cuttable TCP forwarder to the machine's PostgreSQL (`proxy.route(url)`), to play an outage."""
    forwarder = DatabaseProxy(5432)
    yield forwarder
    forwarder.close()
