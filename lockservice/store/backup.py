"""Backup and restore that never re-issue a fencing token, a revision or a lease id.

A backup is a point in the past. Put back as it was, the store would count on from there and
hand out again the fencing tokens and revisions it handed out after the backup: a holder with
token 2 from before the restore and a new holder with token 2 after it would both pass a fence,
and a watcher resuming from revision N would be sent different changes under N. So a restore
also *bumps* the store, as `etcdutl snapshot restore --bump-revision --mark-compacted` does:

- **Tokens.** The `token_floor` row of `meta` (absent means 0): every acquisition takes
  `max(lock's token, floor) + 1` (`lockservice.core.locks.handoff.take`), so the floor covers lock
  names the backup holds *and* names created after it, which the backup does not know.
- **Revisions.** The `revision` counter itself is raised (one store-wide counter needs no
  separate floor), and `compacted_revision` with it: a Watch from any revision up to there answers
  OUT_OF_RANGE / REVISION_COMPACTED, so a client re-reads instead of being sent other changes
  under a revision it has seen.
- **Lease ids** need nothing: each is 128 random bits (`lockservice.core.ownership`), so the
  chance that a lease granted after the restore repeats one granted before is below 2^-64 even
  after 2^32 leases on each side.

How high is high enough is `raised_floor`. The stores read the floor once, when they open: it
changes only here, with no server running (SQLite: the file's lock says so; PostgreSQL: no other
session may be connected).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

from lockservice.store.compaction import holding_server_lock
from lockservice.store.sqlite import schema as sqlite_schema

__all__ = [
    "BackupError",
    "BackupSummary",
    "Bumped",
    "backup_sqlite",
    "bump_postgres",
    "bump_sqlite",
    "raised_floor",
    "restore_sqlite",
]

TOKEN_FLOOR = "token_floor"  # the meta row: every fencing token issued is above it

Query = Callable[[str], list[tuple[Any, ...]]]


class BackupError(Exception):
    """A backup, restore or bump that cannot go ahead; the message is one line."""


@dataclass(frozen=True, slots=True)
class BackupSummary:
    revision: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Bumped:
    """What a bump did: every later token is above `token_floor`, every later revision above
    `revision` (and Watch refuses to replay from `revision` or earlier)."""

    token_floor: int
    revision: int
    # The largest token (or floor) and the revision the store held before: above the clock means
    # the clock is behind the machines that issued them (see `raised_floor`).
    previous_token: int
    previous_revision: int
    now_us: int

    @property
    def clock_behind(self) -> bool:
        return max(self.previous_token, self.previous_revision) >= self.now_us


def raised_floor(highest: int, now_us: int, bump: int) -> int:
    """The value a restored store counts on from, for tokens (`highest`: the largest token or
    floor it holds) and for revisions (`highest`: its revision): `max(now_us, highest + bump)`.

    Why the clock: a lock's token grows by one per acquisition and the store revision by one per
    committed change; each needs a commit of its own, far slower than one per microsecond, and
    both started near 0. So a token or revision issued at time t is below t in microseconds since
    the epoch, and the restore time is above everything issued before the restore: tokens for
    names in the backup, for names created after it, and every revision. Nothing needs to be
    known about what happened after the backup, and it holds for any number of restores, of
    any backup, in any order, because the floor never goes above the clock (with `bump` 0).

    Why `highest + bump` too: a clock that is behind (restoring on another machine) would break
    the argument; the floor is still never below what the backup holds, and `bump` (etcd's
    `--bump-revision`) adds the operator's bound on what happened after the backup. A floor above
    the clock weakens the clock's argument for later restores by the same amount, so the default
    bump is 0.
    """
    if bump < 0:
        raise ValueError("bump must not be negative")
    return max(now_us, highest + bump)


def _now_us() -> int:
    return time.time_ns() // 1000


def _bump(query: Query, now_us: int, bump: int) -> Bumped:
    """Raises the token floor and the revision, compacts everything up to it. Runs inside the
    caller's transaction on a schema `migrate` has brought up to date."""
    meta = {str(name): int(value) for name, value in query("SELECT name, value FROM meta")}
    largest_token = int(query("SELECT coalesce(max(token), 0) FROM locks")[0][0])
    previous_token = max(largest_token, meta.get(TOKEN_FLOOR, 0))
    previous_revision = meta["revision"]
    floor = raised_floor(previous_token, now_us, bump)
    revision = raised_floor(previous_revision, now_us, bump)
    # Plain integers we computed: formatted in, so one text serves both databases.
    query(
        f"INSERT INTO meta (name, value) VALUES ('{TOKEN_FLOOR}', {floor}) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
    )
    query(f"UPDATE meta SET value = {revision} WHERE name IN ('revision', 'compacted_revision')")
    query(f"DELETE FROM events WHERE revision <= {revision}")
    # No server runs, so no call waits: queued waiters of the backup would be handed locks.
    query("DELETE FROM lock_waiters")
    return Bumped(
        token_floor=floor,
        revision=revision,
        previous_token=previous_token,
        previous_revision=previous_revision,
        now_us=now_us,
    )


# -- SQLite --------------------------------------------------------------------------------------


def _uri(path: str, mode: str) -> str:
    return f"{Path(path).absolute().as_uri()}?mode={mode}"


def _sqlite_query(conn: sqlite3.Connection) -> Query:
    return lambda sql: conn.execute(sql).fetchall()


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: str, target: str) -> None:
    """Copies the SQLite database `source` to the new file `target` with SQLite's backup API, in
    one step: one read transaction, so the copy is one point in time. In WAL mode that reader
    never blocks the server's writer. The copy is one self-contained file, synced."""
    with contextlib.closing(sqlite3.connect(_uri(source, "ro"), uri=True, timeout=30.0)) as src:
        src.execute("PRAGMA busy_timeout = 30000")
        with contextlib.closing(sqlite3.connect(target, isolation_level=None)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")
    _fsync(target)


def _replace(temporary: str, target: str) -> None:
    """Moves the finished `temporary` onto `target` atomically and durably."""
    os.replace(temporary, target)
    _fsync(os.path.dirname(os.path.abspath(target)))


@contextlib.contextmanager
def _temporary_beside(target: str, suffix: str) -> Iterator[str]:
    """A fresh file name next to `target` (same file system, so the rename is atomic), removed
    unless the body moved it away."""
    temporary = f"{target}.{suffix}-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.remove(temporary)
    try:
        yield temporary
    finally:
        for leftover in (temporary, temporary + "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)


def _check_lockservice_db(path: str, what: str, *, thorough: bool) -> int:
    """The revision of the lockservice database at `path`, opened read-only; else a BackupError
    "`what`: why". `thorough` also reads every page (PRAGMA quick_check)."""
    try:
        with contextlib.closing(sqlite3.connect(_uri(path, "ro"), uri=True, timeout=30.0)) as conn:
            if thorough and conn.execute("PRAGMA quick_check").fetchone() != ("ok",):
                raise BackupError(f"{what}: it is damaged (PRAGMA quick_check found errors)")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"meta", "resources"} <= tables:
                raise BackupError(f"{what}: it has no lockservice tables")
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{what}: {error}") from None
    version = int(meta.get("schema_version", 0))
    if version > sqlite_schema.SCHEMA_VERSION:
        raise BackupError(
            f"{what}: its schema version {version} is newer than this lockservice reads "
            f"({sqlite_schema.SCHEMA_VERSION}); upgrade lockservice"
        )
    return int(meta.get("revision", 0))


def backup_sqlite(db_path: str, out_path: str) -> BackupSummary:
    """Copies the live database at `db_path` to `out_path` (replaced atomically if it exists),
    while a server may be running and writing: every write acknowledged before the copy starts
    is in it, and the copy is one consistent point in time."""
    if not os.path.isfile(db_path):
        raise BackupError(f"the database {db_path} does not exist")
    if os.path.exists(out_path) and os.path.samefile(db_path, out_path):
        raise BackupError(f"{out_path} is the database itself: choose another file")
    directory = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(directory):
        raise BackupError(f"the directory {directory} does not exist")
    _check_lockservice_db(db_path, f"the database {db_path} is not a lockservice database", thorough=False)
    with _temporary_beside(out_path, "part") as temporary:
        try:
            _copy(db_path, temporary)
        except (sqlite3.Error, OSError) as error:
            raise BackupError(f"cannot back up {db_path} to {out_path}: {error}") from None
        revision = _check_lockservice_db(temporary, f"the copy {temporary} is not sound", thorough=True)
        _replace(temporary, out_path)
    return BackupSummary(revision=revision, size_bytes=os.path.getsize(out_path))


@contextlib.contextmanager
def _offline(db_path: str) -> Iterator[None]:
    """Holds the database's `.lock` file as a server does, so no server runs on it meanwhile
    (and none is running now, or this refuses)."""
    directory = os.path.dirname(os.path.abspath(db_path))
    if not os.path.isdir(directory):
        raise BackupError(f"the directory {directory} does not exist")
    with holding_server_lock(db_path) as held:
        if not held:
            raise BackupError(
                f"the database {db_path} is in use by a running lockservice server: stop it first"
            )
        yield


def _bump_file(path: str, bump: int) -> Bumped:
    """Brings the schema up to date (as a server's start would), then bumps, in one commit."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=30.0)) as conn:
        sqlite_schema.migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            bumped = _bump(_sqlite_query(conn), _now_us(), bump)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return bumped


def restore_sqlite(backup_path: str, db_path: str, *, force: bool = False, bump: int = 0) -> Bumped:
    """Replaces the database at `db_path` (which no server may hold; an existing one only with
    `force`) by the backup, bumped. The database is replaced whole in one rename; its old WAL
    is removed first, so it cannot be replayed onto the restored file."""
    if not os.path.isfile(backup_path):
        raise BackupError(f"the backup {backup_path} does not exist")
    _check_lockservice_db(backup_path, f"{backup_path} is not a lockservice backup", thorough=True)
    with _offline(db_path), _temporary_beside(db_path, "restore") as temporary:
        if os.path.exists(db_path) and not force:
            raise BackupError(f"the database {db_path} exists: pass --force to replace it with the backup")
        try:
            _copy(backup_path, temporary)
            bumped = _bump_file(temporary, bump)
            _fsync(temporary)
            for stale in (db_path + "-wal", db_path + "-shm", db_path + "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(stale)
            _replace(temporary, db_path)
        except (sqlite3.Error, OSError) as error:
            raise BackupError(f"cannot restore {backup_path} to {db_path}: {error}") from None
    return bumped


def bump_sqlite(db_path: str, *, bump: int = 0) -> Bumped:
    """Bumps, in place, a database put back by other means (a file-system snapshot, a copy)."""
    if not os.path.isfile(db_path):
        raise BackupError(f"the database {db_path} does not exist")
    _check_lockservice_db(db_path, f"the database {db_path} is not a lockservice database", thorough=False)
    with _offline(db_path):
        try:
            return _bump_file(db_path, bump)
        except sqlite3.Error as error:
            raise BackupError(f"cannot bump {db_path}: {error}") from None


# -- PostgreSQL ----------------------------------------------------------------------------------


# The database's clock, as PostgresStore reads it for leases.
def _postgres_query(conn: psycopg.Connection[tuple[Any, ...]]) -> Query:
    def query(sql: str) -> list[tuple[Any, ...]]:
        cursor = conn.execute(sql.encode())
        return cursor.fetchall() if cursor.description is not None else []

    return query


# Sessions of a server just stopped leave pg_stat_activity a moment after it exits.
_SESSIONS_GRACE_SECONDS = 5.0


def _refuse_other_sessions(query: Query) -> None:
    """A BackupError if other client sessions stay connected to this database for a few seconds."""
    deadline = time.monotonic() + _SESSIONS_GRACE_SECONDS
    while True:
        count, name = query(
            "SELECT count(*), current_database() FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )[0]
        if not count:
            return
        if time.monotonic() >= deadline:
            sessions = "1 other session is" if count == 1 else f"{count} other sessions are"
            raise BackupError(
                f"{sessions} connected to database {name}: "
                "stop every lockservice server first (--force bumps anyway)"
            )
        time.sleep(0.2)


def bump_postgres(url: str, *, bump: int = 0, force: bool = False) -> Bumped:
    """Bumps, in place, a database restored by PostgreSQL's own tools (pg_restore, PITR). Refuses
    while any other session is connected to it (a running lockservice replica would keep its old
    floor), unless `force`. Holds the migration lock, so a replica starting meanwhile waits and
    then reads the new floor. Time is the database's clock, as for leases."""
    # psycopg is the `postgres` extra: SQLite backups work without it.
    import psycopg

    from lockservice.store.postgres import schema as postgres_schema
    from lockservice.store.postgres.connections import NOW_US_SQL

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            query = _postgres_query(conn)
            if not force:
                _refuse_other_sessions(query)
            postgres_schema.migrate(conn)
            with conn.transaction():
                query(f"SELECT pg_advisory_xact_lock({postgres_schema.MIGRATION_LOCK})")
                return _bump(query, int(query(NOW_US_SQL)[0][0]), bump)
    except psycopg.Error as error:
        detail = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        raise BackupError(f"cannot bump the PostgreSQL database: {detail}") from None
