"""Server settings: every one a flag and a LOCKSERVICE_* variable (the flag wins), validated at
start with one clear line per problem."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from lockservice.core.limits import Limits
from lockservice.logs import LOG_LEVELS

__all__ = ["ConfigError", "Settings", "parse_listen", "sqlite_path"]

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
    grace_period_seconds: float = 10.0
    # How many recent revisions Watch can replay from.
    watch_history_revisions: int = 10_000
    limits: Limits = field(default_factory=Limits)

    def validate(self) -> list[str]:
        """Every problem, one line each; empty when the settings can work."""
        problems: list[str] = []
        try:
            parse_listen(self.listen)
        except ConfigError as error:
            problems.append(str(error))
        try:
            path = sqlite_path(self.store, self.db)
        except ConfigError as error:
            problems.append(str(error))
        else:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                problems.append(f"--db: the directory {directory} does not exist")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"--log-level: {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in ("auto", "json", "console"):
            problems.append(f"--log-format: {self.log_format!r} is not one of auto, json, console")
        if self.grace_period_seconds < 0:
            problems.append("--grace-period: must not be negative")
        limits = self.limits
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
        ):
            if not low <= value <= high:
                problems.append(f"{name}: {value} is outside {low}..{high}")
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
    if store.startswith(("postgresql://", "postgres://")):
        raise ConfigError("--store: the PostgreSQL backend is not available in this build; use SQLite")
    if store.startswith("sqlite:///"):
        return "/" + store.removeprefix("sqlite:///")
    if store.startswith("sqlite:"):
        path = store.removeprefix("sqlite:")
        if path:
            return path
    raise ConfigError(f"--store: {store!r} is not a sqlite:PATH or sqlite:///ABSOLUTE/PATH URL")
