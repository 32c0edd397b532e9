"""What the server runs with (`Settings`), and its validation at start, one clear line per problem.

Where each setting comes from (flag, LOCKSERVICE_* variable, TOML config file, default) and the
precedence between them is `lockservice.setting_sources`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field

from lockservice.authfiles import load_policy, load_tokens
from lockservice.core.limits import Limits
from lockservice.logs import LOG_LEVELS

__all__ = [
    "ConfigError",
    "Settings",
    "is_postgres_url",
    "parse_listen",
    "postgres_url_problems",
    "readable_file",
    "sqlite_path",
]

_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})$")


class ConfigError(ValueError):
    """A setting that cannot work; the message is one line naming the setting."""


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = "127.0.0.1:50051"
    db: str = "./lockservice.db"
    store: str = ""
    log_level: str = "info"
    log_format: str = "auto"
    # uvloop runs gRPC's asyncio side measurably faster (see bench/); asyncio is the fallback.
    event_loop: str = "uvloop"
    grace_period_seconds: float = 10.0
    # How many recent revisions Watch can replay from.
    watch_history_revisions: int = 10_000
    metrics_listen: str = ""
    health_listen: str = ""
    # The HTTP adapter, served in this process beside gRPC (off if empty); HTTPS with the TLS files.
    http_listen: str = ""
    # What HTTP connections may hold (lockservice.http.serve.HttpLimits): a cap, and timeouts
    # for a request's headers and for an idle kept-alive connection.
    http_max_connections: int = 1000
    http_header_timeout_seconds: float = 10.0
    http_keepalive_timeout_seconds: float = 5.0
    # SO_REUSEPORT on the gRPC (and HTTP) port: several processes serve one port (PostgreSQL only).
    reuse_port: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    auth_tokens: str = ""
    auth_policy: str = ""
    socket_mode: int = 0o660
    max_streams_per_client: int = 1000
    max_watchers_per_client: int = 100
    limits: Limits = field(default_factory=Limits)

    @property
    def authenticates(self) -> bool:
        """Every call must prove an identity: a bearer token, or a client certificate (mTLS)."""
        return bool(self.auth_tokens or self.tls_client_ca)

    def validate(self) -> list[str]:
        """Every problem, one line each; empty when the settings can work."""
        problems: list[str] = []
        try:
            parse_listen(self.listen)
        except ConfigError as error:
            problems.append(str(error))
        missing = missing_postgres_support(self.store)
        problems += missing
        if is_postgres_url(self.store) and not missing:
            problems.extend(postgres_url_problems(self.store))
        try:
            path = "" if is_postgres_url(self.store) else sqlite_path(self.store, self.db)
        except ConfigError as error:
            problems.append(str(error))
        else:
            directory = os.path.dirname(os.path.abspath(path)) if path else ""
            if directory and not os.path.isdir(directory):
                problems.append(f"--db: the directory {directory} does not exist")
            if self.reuse_port and path:
                problems.append(
                    "--reuse-port: SQLite serves one process per database file (it is locked); "
                    "several processes on one port need a postgresql:// --store"
                )
        if self.reuse_port and self.listen.startswith("unix:"):
            problems.append("--reuse-port: shares a HOST:PORT --listen, not a unix: socket")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"--log-level: {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in ("auto", "json", "console"):
            problems.append(f"--log-format: {self.log_format!r} is not one of auto, json, console")
        if self.event_loop not in ("uvloop", "asyncio"):
            problems.append(f"--event-loop: {self.event_loop!r} is not one of uvloop, asyncio")
        elif self.event_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            problems.append("--event-loop: uvloop is not installed here; use --event-loop asyncio")
        if self.grace_period_seconds < 0:
            problems.append("--grace-period: must not be negative")
        for name, seconds in (
            ("--http-header-timeout", self.http_header_timeout_seconds),
            ("--http-keepalive-timeout", self.http_keepalive_timeout_seconds),
        ):
            if not 0.1 <= seconds <= 3600:
                problems.append(f"{name}: {seconds:g} is outside 0.1..3600 seconds")
        limits = self.limits
        if limits.memory_budget_bytes < 16 * limits.max_value_bytes:
            problems.append(
                f"--memory-budget: {limits.memory_budget_bytes} is less than 16 times --max-value-bytes "
                f"({16 * limits.max_value_bytes}): a quarter of it must hold a few reply pages of the "
                "largest value"
            )
        if not 0 <= limits.default_lock_delay_seconds <= limits.max_lock_delay_seconds:
            problems.append(f"--lock-delay: must be between 0 and {limits.max_lock_delay_seconds:g} seconds")
        for name, value, low, high in (
            ("--history-versions", limits.history_versions, 1, 10_000),
            ("--max-key-bytes", limits.max_key_bytes, 1, 4096),
            ("--max-value-bytes", limits.max_value_bytes, 1, 64 * 1024 * 1024),
            ("--request-id-retention", limits.request_id_retention_seconds, 1, 30 * 24 * 3600),
            ("--watch-history", self.watch_history_revisions, 1, 100_000_000),
            ("--watch-queue-size", limits.watch_queue_size, 1, 1_000_000),
            ("--max-lease-ttl", limits.max_lease_ttl_seconds, limits.min_lease_ttl_seconds, 365 * 24 * 3600),
            ("--max-waiters", limits.max_waiters_per_lock, 1, 1_000_000),
            ("--max-leases", limits.max_leases, 1, 100_000_000),
            ("--max-streams-per-client", self.max_streams_per_client, 1, 1_000_000),
            ("--max-watchers-per-client", self.max_watchers_per_client, 1, 1_000_000),
            ("--socket-mode", self.socket_mode, 0, 0o777),
            ("--http-max-connections", self.http_max_connections, 1, 1_000_000),
        ):
            if not low <= value <= high:
                problems.append(f"{name}: {value} is outside {low}..{high}")
        problems += _security_problems(self)
        return problems


def parse_listen(listen: str) -> str:
    """A gRPC bind address: HOST:PORT, [IPv6]:PORT, or unix:PATH (a sidecar's socket)."""
    if listen.startswith("unix:"):
        path = (
            listen.removeprefix("unix://") if listen.startswith("unix://") else listen.removeprefix("unix:")
        )
        if not path:
            raise ConfigError("--listen: unix: needs a socket path, as in unix:/run/lockservice.sock")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ConfigError(f"--listen: the directory of the socket {directory} does not exist")
        return listen
    match = _HOST_PORT.match(listen)
    if match is None or not 0 <= int(match["port"]) <= 65535:
        raise ConfigError(f"--listen: {listen!r} is not HOST:PORT or unix:PATH")
    return listen


def sqlite_path(store: str, db: str) -> str:
    """The SQLite file to open: from a sqlite: store URL, else --db."""
    if not store:
        if not db:
            raise ConfigError("--db: must not be empty")
        return db
    if store.startswith("sqlite:///"):
        return "/" + store.removeprefix("sqlite:///")
    if store.startswith("sqlite:"):
        path = store.removeprefix("sqlite:")
        if path:
            return path
    raise ConfigError(
        f"--store: {store!r} is not a postgresql://..., sqlite:PATH or sqlite:///ABSOLUTE/PATH URL"
    )


def is_postgres_url(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


# Session attributes that reach only a server accepting writes (libpq's target_session_attrs).
_WRITABLE_SESSIONS = ("read-write", "primary")


def postgres_url_problems(url: str) -> list[str]:
    """What keeps a postgresql:// --store URL from working: one libpq cannot parse, or one naming
    several hosts (a primary and its standbys, for failover) that does not ask for the writable
    one with target_session_attrs=read-write: a session could otherwise land on a standby, where
    every write fails."""
    # Imported here: only a PostgreSQL store needs psycopg, and the CLI, the gateway and a SQLite
    # server should neither pay for loading it nor require it installed.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except psycopg.Error as error:
        # libpq quotes the offending part, which may be the password: name the kind only.
        cause = re.sub(r'"[^"]*"', "...", str(error).strip()).splitlines()
        return [f"--store: not a valid PostgreSQL URL ({cause[0] if cause else 'unparseable'})"]
    hosts = str(info.get("host") or "").split(",")
    if len(hosts) > 1 and info.get("target_session_attrs") not in _WRITABLE_SESSIONS:
        return [
            f"--store: names {len(hosts)} hosts but not ?target_session_attrs=read-write: a "
            "connection could reach a standby, where every write fails"
        ]
    return []


def missing_postgres_support(store: str) -> list[str]:
    """The problem with a postgresql:// `store` when psycopg is not installed (it is the
    `postgres` extra: SQLite-only installs go without it)."""
    if is_postgres_url(store) and importlib.util.find_spec("psycopg") is None:
        return ["--store: PostgreSQL support is not installed here: pip install 'lockservice[postgres]'"]
    return []


def readable_file(flag: str, path: str) -> list[str]:
    """The problem with the file `path` given by `flag`, if it is not a file this user can read."""
    if not os.path.isfile(path):
        return [f"{flag}: {path} is not a file"]
    if not os.access(path, os.R_OK):
        return [f"{flag}: {path} is not readable by this user"]
    return []


def _security_problems(settings: Settings) -> list[str]:
    """TLS files present and paired, auth files that parse, an identity source for a policy."""
    problems: list[str] = []
    for flag, listen in (
        ("--metrics-listen", settings.metrics_listen),
        ("--health-listen", settings.health_listen),
        ("--http-listen", settings.http_listen),
    ):
        match = _HOST_PORT.match(listen) if listen else None
        if listen and (match is None or not 0 <= int(match["port"]) <= 65535):
            problems.append(f"{flag}: {listen!r} is not HOST:PORT")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        problems.append("--tls-cert and --tls-key: give both or neither")
    if settings.tls_client_ca and not settings.tls_cert:
        problems.append("--tls-client-ca: client certificates need TLS; give --tls-cert and --tls-key")
    for flag, path in (
        ("--tls-cert", settings.tls_cert),
        ("--tls-key", settings.tls_key),
        ("--tls-client-ca", settings.tls_client_ca),
    ):
        if path:
            problems += readable_file(flag, path)
    if settings.auth_policy and not settings.authenticates:
        problems.append("--auth-policy: needs identities: give --auth-tokens or --tls-client-ca")
    for flag, path, load in (
        ("--auth-tokens", settings.auth_tokens, load_tokens),
        ("--auth-policy", settings.auth_policy, load_policy),
    ):
        if path:
            try:
                load(path)
            except ValueError as error:
                problems.append(f"{flag}: {error}")
    return problems
