"""A PostgreSQL primary and a synchronous streaming standby of the test's own, started from the
machine's server binaries under a temporary directory, for failover tests.

The primary runs with deploy/postgres/primary.conf: the standby is named in its
`synchronous_standby_names`, and `synchronous_commit = on` makes every COMMIT wait until the
standby has flushed its WAL. A commit the client saw acknowledged is therefore on the standby
when the primary dies, and present after promotion.

PostgreSQL refuses to run as root (initdb and postgres both exit); CI runs the suite as root, so
the servers then run as the `postgres` system user (or `nobody`), which owns the directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.ports import free_port

__all__ = ["PRIMARY_CONF", "PostgresPair", "conf_settings", "run_as", "server_binaries", "server_user"]

STANDBY_NAME = "standby1"

# The settings a deployment's primary needs (synchronous_commit, synchronous_standby_names, ...),
# from the file deploy/ ships, so the test runs what docs/postgresql.md tells operators to run.
PRIMARY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "primary.conf"
# What the test adds. fsync stays off: the test kills processes, never the machine, and a killed
# process loses nothing the kernel holds; the guarantee under test is the standby's copy, which
# `synchronous_commit = on` still waits for.
_TEST_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "60",
    "shared_buffers": "16MB",
    "fsync": "off",
    "wal_receiver_status_interval": "1s",
}


def conf_settings(path: Path) -> dict[str, str]:
    """The `name = value` lines of a postgresql.conf file (comments and blank lines skipped)."""
    settings = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, equals, value = line.partition("=")
            assert equals, f"{path}: not a setting: {line!r}"
            settings[name.strip()] = value.strip()
    return settings


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (initdb, pg_ctl, pg_basebackup)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return candidates[-1].parent if candidates else None


def server_user() -> str | None:
    """The user the servers run as: None (this one) unless we are root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no postgres or nobody user to run PostgreSQL as")


def run_as(
    user: str | None, argv: list[str], *, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Runs `argv` as `user` (None: as this process's user), its output captured.

    Through runuser, not subprocess's `user=`: with `user=` Python must fork() rather than vfork(),
    and a fork while other threads are in gRPC calls runs gRPC's fork handlers in the child, which
    then died of SIGSEGV or SIGABRT before exec about once in 12 runs."""
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)


class PostgresPair:
    """A primary and its synchronous standby on free loopback ports.

    `start()` brings both up and returns once the standby streams as `sync`; `url()` names both
    hosts with `target_session_attrs=read-write`, so a client reaches whichever is the primary.
    `close()` stops whatever still runs and removes the directory.
    """

    def __init__(self, binaries: Path) -> None:
        self._bin = binaries
        self._user = server_user()
        self.root = Path(tempfile.mkdtemp(prefix="lockservice-pg-pair-"))
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.primary_dir = self.root / "primary"
        self.standby_dir = self.root / "standby"
        self.primary_port = free_port()
        self.standby_port = free_port()
        self.primary_running = False
        self.standby_running = False

    # -- processes --------------------------------------------------------------------------

    def _run(self, tool: str, *args: str, timeout: float = 60.0) -> str:
        done = run_as(self._user, [str(self._bin / tool), *args], cwd=self.root, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def _configure(self, data_dir: Path, settings: dict[str, str]) -> None:
        # postgresql.auto.conf is read last: these lines win over postgresql.conf and -R's.
        with (data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _start(self, data_dir: Path) -> None:
        self._run(
            "pg_ctl", "start", "-w", "-t", "30", "-D", str(data_dir), "-l", str(data_dir / "server.log")
        )

    def start(self) -> PostgresPair:
        self._run("initdb", "-D", str(self.primary_dir), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8")
        settings = {**conf_settings(PRIMARY_CONF), **_TEST_SETTINGS, "port": str(self.primary_port)}
        self._configure(self.primary_dir, settings)
        self._start(self.primary_dir)
        self.primary_running = True
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary_port),
            "-U",
            "postgres",
            "-D",
            str(self.standby_dir),
            "-X",
            "stream",
            "-c",
            "fast",
            "-R",
        )
        self._configure(
            self.standby_dir,
            {
                "port": str(self.standby_port),
                "primary_conninfo": (
                    f"'host=127.0.0.1 port={self.primary_port} user=postgres application_name={STANDBY_NAME}'"
                ),
                # Promoted, it is alone: waiting for a synchronous standby of its own would block
                # every commit until one is attached (see "Failover" in docs/postgresql.md).
                "synchronous_standby_names": "''",
            },
        )
        self._start(self.standby_dir)
        self.standby_running = True
        self._await_sync_standby()
        return self

    def _await_sync_standby(self, within: float = 30.0) -> None:
        give_up = time.monotonic() + within
        while time.monotonic() < give_up:
            rows = self.query(
                self.primary_port,
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                (STANDBY_NAME,),
            )
            # "quorum" under ANY n (...), "sync" under FIRST n (...).
            if rows and rows[0][0] in ("sync", "quorum"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the standby did not become synchronous within {within} s")

    def stop_standby(self) -> None:
        """Stops the standby (fast shutdown): the primary's commits then wait for it."""
        self._run("pg_ctl", "stop", "-m", "fast", "-w", "-t", "30", "-D", str(self.standby_dir))
        self.standby_running = False

    def start_standby(self) -> None:
        """Starts the standby again and waits until it streams as the synchronous one."""
        self._start(self.standby_dir)
        self.standby_running = True
        self._await_sync_standby()

    def postmaster_pid(self, data_dir: Path) -> int:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])

    def kill_primary(self) -> None:
        """kill -9 of the primary's postmaster: its backends notice and exit, nothing is flushed
        or handed over, and clients' connections break."""
        os.kill(self.postmaster_pid(self.primary_dir), signal.SIGKILL)
        self.primary_running = False

    def promote_standby(self) -> None:
        """`pg_ctl promote -w`: returns once the standby accepts writes."""
        self._run("pg_ctl", "promote", "-w", "-t", "30", "-D", str(self.standby_dir))

    # -- access -----------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """Both hosts, primary first; libpq takes the first that accepts read-write sessions."""
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary_port},127.0.0.1:{self.standby_port}/"
            f"{database}?target_session_attrs=read-write"
        )

    def query(
        self, port: int, sql: str, params: tuple[Any, ...] = (), database: str = "postgres"
    ) -> list[Any]:
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/{database}", autocommit=True, connect_timeout=5
        ) as conn:
            cursor = conn.execute(sql.encode(), params)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> str:
        self.query(self.primary_port, f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        for running, data_dir in (
            (self.primary_running, self.primary_dir),
            (self.standby_running, self.standby_dir),
        ):
            if running:
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._run("pg_ctl", "stop", "-m", "immediate", "-w", "-t", "20", "-D", str(data_dir))
        self.primary_running = self.standby_running = False
        shutil.rmtree(self.root, ignore_errors=True)
