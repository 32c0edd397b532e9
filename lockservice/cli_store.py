"""The operator's store verbs `compact` and `migrate` (the work is `lockservice.store.compaction`
and `lockservice.store.schema_status`).

They find the store as `serve` and `backup` do (`--store` / `--db`, `--config`, the LOCKSERVICE_*
variables), and work on it directly, while a server runs or not. `compact` reads the retention
settings the same way (`--history-versions`, `--watch-history`, `--request-id-retention`): give
it the server's. Output is a few lines on standard output; a refusal is one line on standard
error and exit status 2. `migrate --status` exits 0 when the schema is current, 1 when
migrations are pending.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lockservice.cli_backup import add_store_flags, fail, store_of
from lockservice.logs import configure_logging
from lockservice.setting_sources import OPTIONS, resolve
from lockservice.settings import ConfigError

if TYPE_CHECKING:
    from lockservice.cli import Subparsers
    from lockservice.store.compaction import Compacted, Retention
    from lockservice.store.schema_status import SchemaStatus

__all__ = ["STORE_COMMANDS", "add_store_commands"]

STORE_COMMANDS = ("compact", "migrate")
_RETENTION_OPTIONS = ("history-versions", "watch-history", "request-id-retention")


def _retention(args: argparse.Namespace) -> Retention:
    # The store modules (sqlite_utils, psycopg) are loaded by the store verbs only, not by every
    # `lockservice` command.
    from lockservice.store.compaction import Retention

    flags = {"db": args.db, "store": args.store, "config": args.config}
    flags |= {name: getattr(args, name.replace("-", "_")) for name in _RETENTION_OPTIONS}
    settings, problems = resolve(flags)
    problems += settings.validate()
    if problems:
        raise ConfigError(problems[0])
    return Retention(
        history_versions=settings.limits.history_versions,
        watch_history_revisions=settings.watch_history_revisions,
        request_id_retention_seconds=settings.limits.request_id_retention_seconds,
    )


def _report_compacted(where: str, done: Compacted) -> None:
    print(
        f"compacted {where} ({'online: a server was running' if done.online else 'offline'}): "
        f"deleted {done.answers} request answers, {done.versions} versions, {done.events} events"
    )
    if done.compacted_revision is not None:
        print(f"Watch replays from revision {done.compacted_revision + 1} on")
    else:
        print("events left to the running server (it prunes them itself)")
    print(f"size {done.size_before} -> {done.size_after} bytes ({done.reclaimed_by})")


def _run_compact(args: argparse.Namespace) -> int:
    from lockservice.store.compaction import CompactError, compact_postgres, compact_sqlite

    try:
        kind, where = store_of(args)
        retention = _retention(args)
        done = compact_postgres(where, retention) if kind == "postgres" else compact_sqlite(where, retention)
    except (CompactError, ConfigError) as error:
        return fail(str(error))
    _report_compacted("the PostgreSQL store" if kind == "postgres" else where, done)
    return 0


def _report_status(status: SchemaStatus) -> int:
    if not status.exists:
        print("no database yet: a server's start (or lockservice migrate) creates it")
    print(f"schema version {status.current}; this lockservice brings it to {status.latest}")
    if status.current > status.latest:
        print("the schema is newer than this lockservice: upgrade lockservice")
        return 1
    for version, name in status.pending:
        print(f"pending: {version} {name}")
    if not status.pending:
        print("no migrations pending")
    return 1 if status.pending else 0


def _run_migrate(args: argparse.Namespace) -> int:
    from lockservice.store.schema_status import (
        SchemaError,
        migrate_postgres,
        migrate_sqlite,
        postgres_status,
        sqlite_status,
    )

    try:
        kind, where = store_of(args)
        if args.status:
            return _report_status(postgres_status(where) if kind == "postgres" else sqlite_status(where))
        # Each migration applied is logged (one line each), as at a server's start.
        configure_logging("info", "auto")
        applied = migrate_postgres(where) if kind == "postgres" else migrate_sqlite(where)
    except (SchemaError, ConfigError) as error:
        return fail(str(error))
    for step in applied:
        print(f"applied: {step.version} {step.name} in {step.seconds * 1000:.1f} ms")
    if not applied:
        print("no migrations pending")
    return 0


def add_store_commands(sub: Subparsers) -> None:
    compact = sub.add_parser(
        "compact",
        help="prune history past its retention and reclaim space, while the server runs",
        description=(
            "Delete request answers past --request-id-retention, versions beyond --history-versions "
            "per key and (PostgreSQL, or SQLite with no server running) events beyond --watch-history, "
            "in short batches that a running server's writes wait for at most one of; then reclaim "
            "space (SQLite: wal_checkpoint(TRUNCATE), and VACUUM when no server runs; PostgreSQL: "
            "VACUUM (ANALYZE), never FULL)."
        ),
    )
    add_store_flags(compact, postgres=True)
    for option in OPTIONS:
        if option.name in _RETENTION_OPTIONS:
            compact.add_argument(
                option.flag,
                dest=option.name.replace("-", "_"),
                metavar=option.metavar,
                help=f"{option.help}, as the server's [env {option.variable}]",
            )
    compact.set_defaults(run=_run_compact)

    migrate = sub.add_parser(
        "migrate",
        help="apply pending schema migrations (--status: only show them)",
        description=(
            "Bring the store's schema up to this lockservice's version, as a server's start does, "
            "logging each migration applied. With --status, print the schema version and the "
            "pending migrations and change nothing (exit 0 when current, 1 when some are pending)."
        ),
    )
    add_store_flags(migrate, postgres=True)
    migrate.add_argument("--status", action="store_true", help="show the version and pending migrations only")
    migrate.set_defaults(run=_run_migrate)
