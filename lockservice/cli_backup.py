"""The operator's verbs `backup`, `restore` and `bump` (the work is `lockservice.store.backup`).

They find the store as `serve` does: `--store` / `--db` (and `--config`), then the LOCKSERVICE_*
variables, then the config file, then the default. Success prints one line; a refusal is one
line on standard error and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from lockservice.setting_sources import CONFIG_VARIABLE, resolve
from lockservice.settings import ConfigError, is_postgres_url, missing_postgres_support, sqlite_path

if TYPE_CHECKING:
    from lockservice.cli import Subparsers
    from lockservice.store.backup import Bumped

__all__ = ["add_backup_commands", "add_store_flags", "fail", "store_of"]

_POSTGRES_BACKUP = (
    "a PostgreSQL store is backed up with pg_dump (or PostgreSQL's base backups and WAL archive) and "
    "restored with pg_restore; then run `lockservice bump --store URL` (see docs/operations.md)"
)


def store_of(args: argparse.Namespace) -> tuple[str, str]:
    """("postgres", URL) or ("sqlite", PATH), by the precedence `serve` uses."""
    settings, problems = resolve({"db": args.db, "store": args.store, "config": args.config})
    problems += missing_postgres_support(settings.store)
    if problems:
        raise ConfigError(problems[0])
    if is_postgres_url(settings.store):
        return "postgres", settings.store
    return "sqlite", sqlite_path(settings.store, settings.db)


def fail(message: str) -> int:
    print(f"lockservice: error: {message}", file=sys.stderr)
    return 2


def _report(bumped: Bumped) -> None:
    if bumped.clock_behind:
        print(
            "lockservice: warning: the store held tokens or revisions at or above this clock "
            f"({bumped.now_us} us): is the clock behind? --bump N raises them by N more",
            file=sys.stderr,
        )
    print(
        f"fencing tokens continue above {bumped.token_floor}; revisions continue above {bumped.revision} "
        "(Watch from an earlier revision answers REVISION_COMPACTED)"
    )


def _run_backup(args: argparse.Namespace) -> int:
    from lockservice.store.backup import BackupError, backup_sqlite  # loaded by these verbs only

    try:
        kind, db = store_of(args)
        if kind == "postgres":
            return fail(_POSTGRES_BACKUP)
        summary = backup_sqlite(db, args.out)
    except (BackupError, ConfigError) as error:
        return fail(str(error))
    print(f"backed up {db} to {args.out}: revision {summary.revision}, {summary.size_bytes} bytes")
    return 0


def _run_restore(args: argparse.Namespace) -> int:
    from lockservice.store.backup import BackupError, restore_sqlite

    try:
        kind, db = store_of(args)
        if kind == "postgres":
            return fail(_POSTGRES_BACKUP)
        bumped = restore_sqlite(args.backup, db, force=args.force, bump=args.bump)
    except (BackupError, ConfigError) as error:
        return fail(str(error))
    print(f"restored {args.backup} to {db}")
    _report(bumped)
    return 0


def _run_bump(args: argparse.Namespace) -> int:
    from lockservice.store.backup import BackupError, bump_postgres, bump_sqlite

    try:
        kind, target = store_of(args)
        if kind == "postgres":
            bumped = bump_postgres(target, bump=args.bump, force=args.force)
        else:
            bumped = bump_sqlite(target, bump=args.bump)
    except (BackupError, ConfigError) as error:
        return fail(str(error))
    _report(bumped)
    return 0


def _count(text: str) -> int:
    if not text.isdecimal():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, 0 or more")
    return int(text)


def add_store_flags(parser: argparse.ArgumentParser, *, postgres: bool) -> None:
    parser.add_argument(
        "--db", metavar="PATH", help="SQLite database file [env LOCKSERVICE_DB; default ./lockservice.db]"
    )
    store_help = "postgresql://... or sqlite:PATH" if postgres else "sqlite:PATH (instead of --db)"
    parser.add_argument("--store", metavar="URL", help=f"storage URL: {store_help} [env LOCKSERVICE_STORE]")
    parser.add_argument(
        "--config", metavar="PATH", help=f"TOML settings file, as serve reads it [env {CONFIG_VARIABLE}]"
    )


def _add_bump_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bump",
        type=_count,
        default=0,
        metavar="N",
        help=(
            "also count on from at least N above the largest token and revision the store holds "
            "(as etcd's --bump-revision; default 0: the clock suffices, see docs/operations.md)"
        ),
    )


def add_backup_commands(sub: Subparsers) -> None:
    backup = sub.add_parser(
        "backup",
        help="copy a SQLite store to a file while the server runs",
        description=(
            "Copy the SQLite database to OUT with SQLite's backup API: one consistent point in time, "
            "taken while the server runs and writes. OUT is replaced atomically if it exists."
        ),
    )
    backup.add_argument("out", metavar="OUT", help="the backup file to write")
    add_store_flags(backup, postgres=False)
    backup.set_defaults(run=_run_backup)

    restore = sub.add_parser(
        "restore",
        help="put a backup back, with the server stopped; never re-issues a token or revision",
        description=(
            "Replace the SQLite database by BACKUP, with no server running on it, and bump it: "
            "every fencing token and revision issued later is above every one issued before the "
            "restore, including after the backup was taken."
        ),
    )
    restore.add_argument("backup", metavar="BACKUP", help="a file written by lockservice backup")
    add_store_flags(restore, postgres=False)
    restore.add_argument("--force", action="store_true", help="replace an existing database")
    _add_bump_flag(restore)
    restore.set_defaults(run=_run_restore)

    bump = sub.add_parser(
        "bump",
        help="after restoring a store by other means (pg_restore, PITR, a file copy), never re-issue a token",
        description=(
            "Bump a store put back by other means (pg_restore, point-in-time recovery, a file-system "
            "snapshot), with no server running on it, as restore does: later fencing tokens and "
            "revisions are above every one issued before."
        ),
    )
    add_store_flags(bump, postgres=True)
    bump.add_argument(
        "--force", action="store_true", help="PostgreSQL: bump even though other sessions are connected"
    )
    _add_bump_flag(bump)
    bump.set_defaults(run=_run_bump)
