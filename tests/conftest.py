"""Shared fixtures: real `lockservice serve` processes on real ports, and gRPC stubs to them.

Every end-to-end test runs once per storage backend (`backend` fixture); a test that is specific
to one backend says why.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.ports import free_port
from lockservice.v1 import lease_pb2_grpc, lock_pb2_grpc, resource_pb2_grpc
from tests.e2e.db_proxy import DatabaseProxy

LOCKSERVICE = str(Path(sys.executable).parent / "lockservice")
BACKENDS = ["sqlite", "postgres"]
POSTGRES_ADMIN_URL = os.environ.get(
    "LOCKSERVICE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_created_databases: list[str] = []
_recycled_databases: list[str] = []  # emptied, ready to be handed out again


def _postgres_url(database: str) -> str:
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.encode())


@functools.cache
def postgres_available() -> bool:
    """Whether PostgreSQL answers at the admin URL, probed once per session (`connect_timeout`
    bounds the probe) and remembered: an unreachable or hung PostgreSQL costs one timeout, not
    one per test."""
    try:
        _admin_execute("SELECT 1")
    except Exception:
        return False
    return True


def create_database() -> str:
    """An empty database of this test session's own; dropped when the session ends.

    A database given back with `recycle_database` is emptied and handed out again: creating and
    dropping one costs PostgreSQL a second or more, emptying its schema a tenth of that."""
    if _recycled_databases:
        return _postgres_url(_recycled_databases.pop())
    name = f"lockservice_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f"CREATE DATABASE {name}")
    _created_databases.append(name)
    return _postgres_url(name)


def recycle_database(url: str) -> None:
    """Empties a database `create_database` made, once nothing of its user runs any more, and
    keeps it for the next `create_database`. Connections still open to it are ended first."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    assert name in _created_databases and name not in _recycled_databases, url
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                b" WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            # Everything the server (and pg_restore) creates lives in the public schema.
            conn.execute(b"DROP SCHEMA public CASCADE")
            conn.execute(b"CREATE SCHEMA public")
    except psycopg.Error:
        return  # not reused: the session's end drops it with the others
    _recycled_databases.append(name)


def _drop_databases() -> None:
    _recycled_databases.clear()
    while _created_databases:
        _admin_execute(f"DROP DATABASE IF EXISTS {_created_databases.pop()} WITH (FORCE)")


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs.

    `free_port()` alone is not enough for "nothing listens there": a server started by a
    parallel test can take the port in between. The socket stays bound without listening, so
    connections are refused and no other socket can bind the port.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# A channel's first connection is refused while the server starts; gRPC then waits its default
# reconnect backoff (1 s) before trying again, so readiness polls would see the server a second
# after it serves (it serves about 0.35 s after exec).
READINESS_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 100),
]


def wait_until_serving(
    address: str,
    process: subprocess.Popen[bytes],
    timeout: float = 60.0,
    logs: Callable[[], str] = lambda: "",
    channel: grpc.Channel | None = None,
) -> None:
    """Polls gRPC health at `address` (over `channel`, e.g. a TLS one, if given) until SERVING.
    RuntimeError, with `logs()`, if `process` exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as stack:
        if channel is None:
            channel = stack.enter_context(grpc.insecure_channel(address, options=READINESS_CHANNEL_OPTIONS))
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{logs()}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"no server serving at {address} after {timeout}s:\n{logs()}")


class ServerProcess:
    """One `lockservice serve` process; restartable on the same port and database."""

    def __init__(
        self, workdir: Path, backend: str, extra_args: list[str] | None = None, store_url: str = ""
    ) -> None:
        """`store_url` shares an existing PostgreSQL database (replicas); by default a postgres
        server gets a fresh database of its own."""
        self.workdir = workdir
        self.backend = backend
        # A database of its own, unless it shares one (replicas): `owns_database` says which.
        self.owns_database = backend == "postgres" and not store_url
        self.store_url = store_url or (create_database() if self.owns_database else "")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.db = workdir / "lockservice.db"
        self.log_path = workdir / "server.log"
        self.extra_args = list(extra_args or [])
        self.max_open_files: int | None = None  # the process's RLIMIT_NOFILE; None: inherited
        self.process: subprocess.Popen[bytes] | None = None
        self._started = False

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

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Starts the process and waits until it serves. On its first start only, a port that
        `free_port()` offered but another test's process took before this one could bind it
        (the server exits: "cannot listen") is replaced by a fresh one; a restart keeps its
        port, which the test's channels address."""
        for attempt in range(3):
            logged = self.log_path.stat().st_size if self.log_path.exists() else 0
            self.launch()
            try:
                self.wait_ready(timeout)
            except RuntimeError:
                taken = '"event": "cannot listen"' in self.logs()[logged:]
                if self._started or not taken or attempt == 2:
                    raise
                self.port = free_port()
                self.address = f"127.0.0.1:{self.port}"
                continue
            self._started = True
            return self
        raise AssertionError("unreachable")

    def launch(self) -> ServerProcess:
        """Starts the process without waiting for it to serve (for concurrent starts)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        if self.max_open_files is not None:  # set before it serves: what it opens later counts
            limit = self.max_open_files
            resource.prlimit(self.process.pid, resource.RLIMIT_NOFILE, (limit, limit))
        return self

    def wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        wait_until_serving(self.address, self.process, timeout, self.logs)

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


# Fixtures that start `lockservice` processes: a test using one (even through another fixture)
# is an end-to-end test, marked `e2e` without saying so.
_PROCESS_FIXTURES = frozenset({"server", "server_factory"})
_E2E_DIR = Path(__file__).resolve().parent / "e2e"


def _mark_needs(item: pytest.Item) -> None:
    """Marks `e2e` the tests under tests/e2e/ and those using a process fixture, and `postgres`
    the variants parametrised with "postgres" (`backend`, `store_kind`, ...). `make test-fast`
    deselects both; a test that starts processes some other way says `@pytest.mark.e2e`."""
    path = Path(str(item.path)).resolve()
    if _E2E_DIR in path.parents or _PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.e2e)
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "postgres" in callspec.params.values():
        item.add_marker(pytest.mark.postgres)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.backend_specific("sqlite", reason=...)` keeps a test to the backends it is
    about: the other backends' variants are deselected, not skipped (in CI a skipped PostgreSQL
    test is a failure, so nothing may be skipped quietly). Then marks what tests need
    (`_mark_needs`)."""
    kept, dropped = [], []
    for item in items:
        _mark_needs(item)
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
    items.sort(key=_longest_first)


# The files that take longest (worker-seconds, measured with --durations), longest first. Under
# `--dist loadfile` a file runs on one worker, and workers take files in collection order: a long
# file taken last keeps its worker busy after the other has finished. Starting with these (and
# `--no-loadscope-reorder` in pyproject.toml, which would order files by their number of tests,
# putting these few-test files last) lets the many short files fill in behind them.
_LONGEST_FILES = (
    "tests/e2e/test_memory_bounds.py",
    "tests/e2e/test_store_outage.py",
    "tests/fuzz/test_http_schemathesis.py",
    "tests/e2e/test_retried_lock_waits.py",
    "tests/test_bench_smoke.py",
    "tests/test_cli_client.py",
    "tests/robustness/test_robustness.py",
    "tests/e2e/test_backup_restore.py",
    "tests/e2e/test_replicas.py",
    "tests/e2e/test_ops_metrics.py",
    "tests/e2e/test_http_connection_limits.py",
    "tests/fuzz/test_grpc_fuzz.py",
    "tests/e2e/test_lifecycle.py",
    "tests/e2e/test_ops_lifecycle.py",
    "tests/bench/test_scale_smoke.py",
    "tests/e2e/test_store_maintenance.py",
    "tests/test_postgres_skips.py",
    "tests/e2e/test_postgres_failover.py",
    "tests/test_install.py",
    "tests/e2e/test_bad_store.py",
)
_RANK = {path: rank for rank, path in enumerate(_LONGEST_FILES)}


def _longest_first(item: pytest.Item) -> int:
    """The sort key keeping each file's tests together and in their order (the sort is stable)."""
    return _RANK.get(item.nodeid.split("::", 1)[0], len(_LONGEST_FILES))


def require_postgres() -> None:
    """Skips the calling test when PostgreSQL is unreachable; in CI fails it instead."""
    if postgres_available():
        return
    message = f"{POSTGRES_SKIP_REASON} at {POSTGRES_ADMIN_URL}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: in CI every PostgreSQL test must run")
    pytest.skip(message)


# The words every PostgreSQL skip says (`require_postgres` and the modules that skip alike).
POSTGRES_SKIP_REASON = "PostgreSQL is not reachable"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Ends a run that skipped PostgreSQL tests with a banner saying so: without PostgreSQL
    `make test` still exits 0 (in CI those skips are failures instead), which must not pass
    for a full run unnoticed."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if POSTGRES_SKIP_REASON in str(getattr(report, "longrepr", ""))
    ]
    if not skipped:
        return
    terminalreporter.write_sep("!", f"{len(skipped)} PostgreSQL tests SKIPPED", red=True, bold=True)
    terminalreporter.write_line(
        f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: this run did NOT test the PostgreSQL "
        "backend.\nStart one (e.g. `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust "
        "postgres:16`, or your distribution's postgresql service), or point LOCKSERVICE_TEST_POSTGRES "
        "at an admin URL (postgresql://USER@HOST:PORT/postgres), then run the tests again.",
        red=True,
        bold=True,
    )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgres":
        require_postgres()
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
    for server in started:
        if server.owns_database:
            recycle_database(server.store_url)


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
