"""Server processes for a bench run: `lockservice serve` (SQLite or PostgreSQL, 1..N replicas), the
bare echo server, or a single-member etcd (`bench.etcd`, for the naive-client comparison), each
on a free loopback port, plus their CPU time and memory from /proc.

Everything started here is stopped by the same object that started it (`Servers` is a context
manager), and only by process id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import etcd
from bench.echo import METHOD as ECHO_METHOD
from bench.ports import free_port

LOCKSERVICE = str(Path(sys.executable).parent / "lockservice")
_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "LOCKSERVICE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Backend:
    """What to start: `store` is "sqlite", "postgresql", "echo" or "etcd"; `replicas` > 1 only for
    PostgreSQL."""

    store: str
    replicas: int = 1

    @property
    def label(self) -> str:
        if self.store == "postgresql":
            return f"postgresql x{self.replicas}"
        return self.store


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields after the command name start at field 3 (state); utime and stime are fields 14, 15.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB, from /proc/PID/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


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


_Launch = Callable[[], tuple[list[str], str]]
"""Picks fresh ports and returns (command line, gRPC target)."""

_PORT_TAKEN = ("cannot listen", "address already in use", "failed to bind")


def _port_taken(log: str) -> bool:
    """Whether a process's log says that it exited because its port was taken."""
    return any(sign in log.lower() for sign in _PORT_TAKEN)


def _listening(command: list[str]) -> tuple[list[str], str]:
    target = f"127.0.0.1:{free_port()}"
    return [*command, "--listen", target], target


def _etcd(data_dir: str) -> tuple[list[str], str]:
    target = f"127.0.0.1:{free_port()}"
    return etcd.command(data_dir, target, free_port()), target


@dataclass
class Servers:
    """The server processes of one measured run: started on enter, stopped (and the database
    dropped) on exit. `extra_args` go to every `lockservice serve`; `before_start`, if given, gets
    the store's location (the SQLite file or the PostgreSQL URL, also kept in `location`) before
    any server opens it."""

    backend: Backend
    extra_args: list[str] = field(default_factory=list)
    before_start: Callable[[str], None] | None = None
    targets: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    location: str = ""
    _workdir: tempfile.TemporaryDirectory[str] | None = None
    _database: str = ""
    _profilers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _launches: list[_Launch] = field(default_factory=list)
    _log_starts: list[int] = field(default_factory=list)  # where each process's latest launch logs

    def __enter__(self) -> Servers:
        self._workdir = tempfile.TemporaryDirectory(prefix="lockservice-bench-")
        try:
            if self.backend.store == "echo":
                self._start(lambda: _listening([sys.executable, "-m", "bench.echo"]))
            elif self.backend.store == "etcd":
                data_dir = f"{self._workdir.name}/etcd"
                self._start(lambda: _etcd(data_dir))
            elif self.backend.store == "sqlite":
                self.location = f"{self._workdir.name}/bench.db"
                if self.before_start is not None:
                    self.before_start(self.location)
                serve = [LOCKSERVICE, "serve", "--db", self.location, *self._serve_args()]
                self._start(lambda: _listening(serve))
            else:
                self._database = f"lockservice_bench_{uuid.uuid4().hex[:12]}"
                _admin_execute(f"CREATE DATABASE {self._database}")
                self.location = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + self._database
                if self.before_start is not None:
                    self.before_start(self.location)
                serve = [LOCKSERVICE, "serve", "--store", self.location, *self._serve_args()]
                for _ in range(self.backend.replicas):
                    self._start(lambda: _listening(serve))
            for index in range(len(self.processes)):
                self._wait_ready(index)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _serve_args(self) -> list[str]:
        # Per-call info logs are a measurable cost; warnings and errors still reach the log file.
        return ["--log-level", "warning", "--log-format", "json", *self.extra_args]

    def _start(self, launch: _Launch) -> None:
        """Starts a process from `launch` (which picks its ports each time it is called)."""
        self._launches.append(launch)
        self.targets.append("")
        self._log_starts.append(0)
        self.processes.append(self._launch(len(self.processes)))

    def _launch(self, index: int) -> subprocess.Popen[bytes]:
        assert self._workdir is not None
        command, self.targets[index] = self._launches[index]()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKSERVICE_", "ETCD_"))}
        with self._log(index).open("ab") as out:
            self._log_starts[index] = out.tell()
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=_ROOT)

    def _log(self, index: int) -> Path:
        assert self._workdir is not None
        return Path(self._workdir.name) / f"server-{index}.log"

    def _wait_ready(self, index: int, attempts: int = 3) -> None:
        """Until process `index` serves. A port that another process took between being offered
        and being bound (the process exits saying so) is replaced by a fresh one, up to
        `attempts` ports; any other failure is raised at once, with the process's log."""
        for attempt in range(1, attempts + 1):
            try:
                wait_ready(self.targets[index], self.processes[index], health=self.backend.store != "echo")
                return
            except RuntimeError as error:
                logged = self._log(index).read_bytes()
                log = logged.decode(errors="replace")
                latest = logged[self._log_starts[index] :].decode(errors="replace")
                exited = self.processes[index].poll() is not None
                if not exited or not _port_taken(latest) or attempt == attempts:
                    tried = f" (tried {attempt} ports)" if attempt > 1 else ""
                    raise RuntimeError(f"{error}{tried}; its log:\n{log[-4000:]}") from error
            self.processes[index] = self._launch(index)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def memory_mb(self) -> tuple[float, float]:
        """(RSS, peak RSS) of the largest server process, in MB."""
        pairs = [memory_mb(process.pid) for process in self.processes]
        return max(rss for rss, _ in pairs), max(peak for _, peak in pairs)

    def database_pids(self) -> list[int]:
        """PostgreSQL backend processes serving this run's database (none for SQLite)."""
        if not self._database:
            return []
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(b"SELECT pid FROM pg_stat_activity WHERE datname = %s", (self._database,))
            return [int(row[0]) for row in rows.fetchall()]

    def start_profiles(self, prefix: Path) -> None:
        """Samples every server process with py-spy (Python frames, collapsed stacks, one file
        per process, without pausing it) until `stop_profiles`."""
        py_spy = str(Path(sys.executable).parent / "py-spy")
        for index, process in enumerate(self.processes):
            command = [py_spy, "record", "--pid", str(process.pid), "--rate", "200", "--format", "raw"]
            command.append("--nonblocking")
            self._profilers.append(
                subprocess.Popen(
                    [*command, "--output", f"{prefix}-{index}.txt"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop_profiles(self) -> None:
        for profiler in self._profilers:
            profiler.send_signal(signal.SIGINT)
        for profiler in self._profilers:
            try:
                profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.wait(timeout=10)
        self._profilers.clear()

    def logs(self) -> str:
        if self._workdir is None:
            return ""
        return "".join(
            path.read_text(errors="replace") for path in sorted(Path(self._workdir.name).glob("*.log"))
        )

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop_profiles()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._database:
            _admin_execute(f"DROP DATABASE IF EXISTS {self._database} WITH (FORCE)")
        if self._workdir is not None:
            self._workdir.cleanup()


def wait_ready(target: str, process: subprocess.Popen[bytes], *, health: bool, timeout: float = 30.0) -> None:
    """Until the server at `target` answers: SERVING health, or (`health` False, the echo
    server) one no-op call. RuntimeError if `process` exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    # The first connection is refused while the server starts; gRPC's default reconnect backoff
    # (1 s) would then hide a server that serves 0.35 s after exec for most of a second.
    options = [("grpc.initial_reconnect_backoff_ms", 20), ("grpc.max_reconnect_backoff_ms", 100)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server for {target} exited with {process.returncode}")
            try:
                if not health:  # the echo server: one no-op call answers when it is up
                    ping: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(ECHO_METHOD)
                    ping(b"", timeout=1.0)
                    return
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"server for {target} not ready after {timeout}s")
