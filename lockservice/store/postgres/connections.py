"""Reaching PostgreSQL: naming it without its password, waiting for it at start, asking whether
it is reachable, and keeping psycopg_pool's reconnection messages out of the log (the store
reports an outage itself, once)."""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict

from lockservice.errors import StoreUnavailable

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "NOW_US_SQL",
    "START_WAIT_SECONDS",
    "await_database",
    "connection_cause",
    "dead_peer_options",
    "describe_target",
    "probe",
    "quiet_pool_log",
]

# The database's clock in microseconds: lease time on PostgreSQL is the database's, never a
# replica's (the store and `lockservice bump` both read it).
NOW_US_SQL = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"

# At start: how long to wait for the database to accept a connection before giving up (exit 2),
# time enough for a database started beside the server (docker compose) to come up.
START_WAIT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5
# A database machine that vanished (not just its process: after a failover, say) answers
# nothing, not even a reset. With the kernel's defaults a connection to it waits hours when idle
# (LISTEN, a call awaiting a reply) and ~15 minutes with data unacknowledged, holding a pool slot
# or the notification channel. With these it is given up after ~15 s of silence, or 10 s of
# unacknowledged data, and its replacement reaches the new primary. A live peer's kernel answers
# keepalives however long a statement runs, so no slow query is cut.
_DEAD_PEER_OPTIONS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
# The probe's wait for a pooled connection before it asks the database directly.
_PROBE_WAIT_SECONDS = 1.0


def connection_cause(error: BaseException) -> str:
    """The first line of a connection error (libpq never puts the password in it)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


def dead_peer_options(url: str) -> dict[str, Any]:
    """libpq keepalive and TCP user timeout parameters for the store's long-lived connections,
    less those `url` sets itself (the operator's choice wins)."""
    try:
        given = conninfo_to_dict(url)
    except psycopg.Error:
        given = {}
    return {name: value for name, value in _DEAD_PEER_OPTIONS.items() if name not in given}


def describe_target(url: str) -> str:
    """user@host:port/database of a PostgreSQL URL (user@host1:port1,host2:port2/database with
    several hosts), for messages: never the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "the --store URL"
    user = f"{info['user']}@" if info.get("user") else ""
    hosts = str(info.get("host") or "localhost").split(",")
    # libpq: one port for every host, or one per host (a multi-host URL names the standbys too).
    ports = str(info.get("port") or "").split(",")
    ports = ports if len(ports) == len(hosts) else ports[:1] * len(hosts)
    targets = ",".join(
        f"{host or 'localhost'}:{port}" if port else host or "localhost"
        for host, port in zip(hosts, ports, strict=True)
    )
    return f"{user}{targets}/{info.get('dbname') or ''}"


class _QuietPool(logging.Filter):
    """psycopg_pool logs every failed (re)connection attempt; the store's probe reports outages
    itself, once and then at most every 30 s."""

    _NOISE = (
        "error connecting in",
        "reconnection attempt in pool",
        "discarding broken connection",
        "discarding closed connection",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self._NOISE))


_QUIET_POOL = _QuietPool()


def quiet_pool_log() -> None:
    """Filters psycopg_pool's per-attempt connection messages (idempotent)."""
    logging.getLogger("psycopg.pool").addFilter(_QUIET_POOL)


def await_database(url: str, target: str) -> None:
    """Waits up to `START_WAIT_SECONDS` for the database at `url` to accept a connection; else
    StoreUnavailable naming it (`target`) and the last cause."""
    give_up = time.monotonic() + START_WAIT_SECONDS
    while True:
        timeout = max(1, min(CONNECT_TIMEOUT_SECONDS, round(give_up - time.monotonic())))
        try:
            psycopg.connect(url, connect_timeout=timeout).close()
            return
        except psycopg.Error as error:
            if time.monotonic() + 0.5 >= give_up:
                raise StoreUnavailable(
                    f"cannot reach PostgreSQL at {target}: {connection_cause(error)} "
                    f"(gave up after {START_WAIT_SECONDS:g} s)"
                ) from None
        time.sleep(0.5)


def probe(pool: psycopg_pool.ConnectionPool[Any], url: str) -> str | None:
    """None when the database answers; else why not. A pool with no connection to give in
    time is asked of the database directly: busy is not unreachable."""
    try:
        with pool.connection(timeout=_PROBE_WAIT_SECONDS) as conn:
            conn.execute(b"SELECT 1")
        return None
    except (psycopg.Error, psycopg_pool.PoolTimeout):
        pass
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
            conn.execute(b"SELECT 1")
    except psycopg.Error as error:
        return connection_cause(error)
    return None
