"""`lockservice migrate [--status]` and `lockservice compact` on both backends.

The status of a fresh and of an old-schema store, without changing it; every migration applied
logged one line each (by the verb and by a server's start); compaction of a store with history
while a server runs and writes (exact rows pruned, no write lost, Watch refused below the new
compacted revision), and offline on SQLite, where it also vacuums the file smaller.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import sqlite_utils

from lockservice.store.migrations import migration_name
from lockservice.store.postgres import schema as postgres_schema
from lockservice.store.sqlite import schema as sqlite_schema
from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.conftest import LOCKSERVICE, ServerProcess, create_database
from tests.e2e.support import ServerFactory
from tests.grpc_errors import decode

MIGRATIONS: dict[str, Sequence[Callable[[Any], None]]] = {
    "sqlite": sqlite_schema.MIGRATIONS,
    "postgres": postgres_schema.MIGRATIONS,
}


def verb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOCKSERVICE, *args], capture_output=True, text=True, timeout=120, check=False, env={"PATH": ""}
    )


def store_flags(backend: str, where: str) -> list[str]:
    return ["--store", where] if backend == "postgres" else ["--db", where]


def fresh_store(backend: str, tmp_path: Path) -> str:
    return create_database() if backend == "postgres" else str(tmp_path / "fresh.db")


def names(backend: str, first: int) -> list[str]:
    """`version name` of every migration from version `first` on."""
    return [f"{v + 1} {migration_name(m)}" for v, m in enumerate(MIGRATIONS[backend]) if v + 1 >= first]


def applied_log_lines(text: str) -> list[str]:
    """`version name` of each "schema migration applied" JSON log line in `text`."""
    lines = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("event") == "schema migration applied":
                assert record["duration_ms"] >= 0
                lines.append(f"{record['version']} {record['name']}")
    return lines


def test_migrate_status_then_migrate_on_a_fresh_store(backend: str, tmp_path: Path) -> None:
    where = fresh_store(backend, tmp_path)
    latest = len(MIGRATIONS[backend])
    status = verb("migrate", "--status", *store_flags(backend, where))
    expected = [f"schema version 0; this lockservice brings it to {latest}"]
    expected += [f"pending: {line}" for line in names(backend, 1)]
    if backend == "sqlite":
        expected.insert(0, "no database yet: a server's start (or lockservice migrate) creates it")
        assert not Path(where).exists(), "--status created the database"
    assert (status.returncode, status.stdout.splitlines(), status.stderr) == (1, expected, "")

    applied = verb("migrate", *store_flags(backend, where))
    assert applied.returncode == 0, applied.stderr
    assert [line.rsplit(" in ", 1)[0] for line in applied.stdout.splitlines()] == [
        f"applied: {line}" for line in names(backend, 1)
    ]
    assert applied_log_lines(applied.stderr) == names(backend, 1)

    again = verb("migrate", "--status", *store_flags(backend, where))
    assert (again.returncode, again.stdout.splitlines()) == (
        0,
        [f"schema version {latest}; this lockservice brings it to {latest}", "no migrations pending"],
    )
    assert verb("migrate", *store_flags(backend, where)).stdout == "no migrations pending\n"


def _old_sqlite(path: str, version: int) -> None:
    """A SQLite store left at schema `version` by an older lockservice."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        db = sqlite_utils.Database(conn)
        db.table("meta").create({"name": str, "value": int}, pk="name", not_null={"name", "value"})
        conn.execute("INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (version,))
        for migration in sqlite_schema.MIGRATIONS[:version]:
            migration(db)


def _old_postgres(url: str, version: int) -> None:
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("CREATE TABLE lockservice_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO lockservice_schema (version) VALUES (%s)", (version,))
        for migration in postgres_schema.MIGRATIONS[:version]:
            migration(conn)


def test_an_old_schema_is_reported_then_migrated_by_a_start_that_logs_each_step(
    backend: str, server_factory: ServerFactory
) -> None:
    old = 1 if backend == "postgres" else 2
    server = server_factory()
    where = server.store_url or str(server.db)
    if backend == "postgres":
        _old_postgres(where, old)
    else:
        _old_sqlite(where, old)
    latest = len(MIGRATIONS[backend])

    status = verb("migrate", "--status", *store_flags(backend, where))
    assert (status.returncode, status.stdout.splitlines()) == (
        1,
        [f"schema version {old}; this lockservice brings it to {latest}"]
        + [f"pending: {line}" for line in names(backend, old + 1)],
    )

    server.start()
    assert applied_log_lines(server.logs()) == names(backend, old + 1)
    after = verb("migrate", "--status", *store_flags(backend, where))
    assert (after.returncode, after.stdout.splitlines()[-1]) == (0, "no migrations pending")
    server.stop()


def assert_compacted(resources: resource_pb2_grpc.ResourceServiceStub, prefix: str) -> None:
    """A Watch of `prefix` from revision 1 is refused: its events were compacted."""
    stream = resources.Watch(resource_pb2.WatchRequest(key=prefix, prefix=True, start_revision=1), timeout=10)
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(stream))
    failure = decode(caught.value)
    assert (failure.code, failure.reason) == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED")


def _write_history(resources: resource_pb2_grpc.ResourceServiceStub, keys: list[str], versions: int) -> None:
    value = b"x" * 8192
    for key in keys:
        for _ in range(versions):
            resources.UpdateResource(
                resource_pb2.UpdateResourceRequest(key=key, value=value, allow_missing=True), timeout=10
            )


def test_compact_prunes_history_while_a_server_writes(backend: str, server_factory: ServerFactory) -> None:
    server: ServerProcess = server_factory(["--history-versions", "20"]).start()
    where = server.store_url or str(server.db)
    keys = [f"k/{i}" for i in range(5)]
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        _write_history(resources, keys, 20)
        stop = threading.Event()
        written: list[str] = []

        def keep_writing() -> None:
            while not stop.is_set():
                key = f"w/{len(written):06d}"
                resources.CreateResource(resource_pb2.CreateResourceRequest(key=key, value=b"v"), timeout=30)
                written.append(key)

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            before = len(written)
            compacted = verb(
                "compact", *store_flags(backend, where), "--history-versions", "2", "--watch-history", "10"
            )
            during = len(written) - before
        finally:
            stop.set()
            writer.join(timeout=60)
        assert compacted.returncode == 0, compacted.stderr
        lines = compacted.stdout.splitlines()
        where_shown = "the PostgreSQL store" if backend == "postgres" else where
        online = f"compacted {where_shown} (online: a server was running)"
        assert lines[0].startswith(f"{online}: deleted 0 request answers, 90 versions, ")
        assert during > 0, "no write went through while compact ran"
        versions = resources.ListResourceVersions(
            resource_pb2.ListResourceVersionsRequest(key="k/0"), timeout=10
        ).versions
        assert [v.version for v in versions] == [20, 19]
        listed = resources.ListResources(
            resource_pb2.ListResourcesRequest(prefix="w/", page_size=1000), timeout=10
        ).resources
        assert [r.key for r in listed] == written  # every acknowledged write is there
        if backend == "postgres":
            # Events below the new horizon are gone, and Watch says so rather than skip them.
            assert int(lines[0].rsplit(", ", 1)[1].split()[0]) > 0
            assert_compacted(resources, "k/")
        else:
            assert lines[1] == "events left to the running server (it prunes them itself)"
    server.stop()


def test_compact_offline_also_prunes_events_and_vacuums_sqlite_smaller(tmp_path: Path) -> None:
    """SQLite only: with no server on the file, compact may prune events and VACUUM (both would
    race a running SQLite server; PostgreSQL prunes events online, above)."""
    server = ServerProcess(tmp_path, "sqlite", ["--history-versions", "50"]).start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            resources = resource_pb2_grpc.ResourceServiceStub(channel)
            _write_history(resources, ["big/a", "big/b"], 40)
            last = resources.GetResource(resource_pb2.GetResourceRequest(key="big/b"), timeout=10)
        server.stop()

        compacted = verb("compact", "--db", str(server.db), "--history-versions", "1", "--watch-history", "5")

        assert compacted.returncode == 0, compacted.stderr
        first, second, third = compacted.stdout.splitlines()
        horizon = last.mod_revision - 5
        assert (
            first
            == f"compacted {server.db} (offline): deleted 0 request answers, 78 versions, {horizon} events"
        )
        assert second == f"Watch replays from revision {horizon + 1} on"
        sizes = third.removeprefix("size ").split(" bytes")[0].split(" -> ")
        size_before, size_after = int(sizes[0]), int(sizes[1])
        assert size_after < size_before // 4
        server.start()
        with grpc.insecure_channel(server.address) as channel:
            resources = resource_pb2_grpc.ResourceServiceStub(channel)
            assert (
                resources.GetResource(resource_pb2.GetResourceRequest(key="big/a"), timeout=10).version == 40
            )
            assert_compacted(resources, "big/")
    finally:
        server.stop()
