"""Backup and restore end to end: a restored store never hands out a fencing token, a revision
or a lease id it handed out before, whatever happened between the backup and the restore.

The scenario of issue #13: lock (token 1), back up, lock twice (tokens 2 and 3), stop, restore,
start: the next token must be above 3, never 2 again.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from lockservice.v1 import lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import LOCKSERVICE, ServerProcess
from tests.e2e.support import ServerFactory, create, get, update
from tests.grpc_errors import decode

# What `restore` and `bump` print on success: the floor every later token is above, and the
# revision the store continues from (everything up to it compacted).
BUMPED = re.compile(r"fencing tokens continue above (\d+); revisions continue above (\d+)")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`lockservice ARGS...` with no LOCKSERVICE_* variable but those given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_")}
    return subprocess.run(
        [LOCKSERVICE, *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=120,
        check=False,
    )


def succeeds(*args: str, env: dict[str, str] | None = None) -> str:
    result = run(*args, env=env)
    assert result.returncode == 0, f"{args}: exit {result.returncode}: {result.stderr}"
    return result.stdout


def floors_of(output: str) -> tuple[int, int]:
    match = BUMPED.search(output)
    assert match is not None, output
    return int(match[1]), int(match[2])


def back_up(server: ServerProcess, out: Path) -> None:
    """An online backup, the server running: `lockservice backup` for SQLite, pg_dump for
    PostgreSQL (its own consistent snapshot)."""
    if server.backend == "sqlite":
        succeeds("backup", "--db", str(server.db), str(out))
    else:
        subprocess.run(
            ["pg_dump", "--format=custom", f"--file={out}", server.store_url], check=True, timeout=120
        )


def restore(server: ServerProcess, backup: Path) -> tuple[int, int]:
    """Puts `backup` back, the server stopped: `lockservice restore` for SQLite; pg_restore and
    then `lockservice bump` for PostgreSQL. Returns the token floor and the revision."""
    if server.backend == "sqlite":
        return floors_of(succeeds("restore", str(backup), "--db", str(server.db), "--force"))
    subprocess.run(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--single-transaction",
            f"--dbname={server.store_url}",
            str(backup),
        ],
        check=True,
        timeout=120,
    )
    return floors_of(succeeds("bump", "--store", server.store_url))


def take(server: ServerProcess, name: str) -> int:
    """Acquires and releases `name`; returns the fencing token it was granted."""
    with grpc.insecure_channel(server.address) as channel:
        locks = lock_pb2_grpc.LockServiceStub(channel)
        lock = locks.AcquireLock(
            lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30, holder="t"), timeout=10
        )
        locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=lock.token), timeout=10)
        return int(lock.token)


def put(server: ServerProcess, key: str, value: bytes) -> resource_pb2.Resource:
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        reply: resource_pb2.Resource = resources.UpdateResource(
            resource_pb2.UpdateResourceRequest(key=key, value=value, allow_missing=True), timeout=10
        )
        return reply


def watch_first(
    server: ServerProcess, key: str, start_revision: int
) -> resource_pb2.WatchResponse | grpc.RpcError:
    """The first response of a Watch from `start_revision`, or the error that ended it."""
    with grpc.insecure_channel(server.address) as channel:
        stream = resource_pb2_grpc.ResourceServiceStub(channel).Watch(
            resource_pb2.WatchRequest(key=key, start_revision=start_revision), timeout=10
        )
        try:
            first: resource_pb2.WatchResponse = next(iter(stream))
        except grpc.RpcError as error:
            return error
        stream.cancel()
        return first


def test_a_restored_store_never_reissues_a_fencing_token(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory().start()
    assert take(server, "jobs/a") == 1
    backup = tmp_path / "backup.db"
    back_up(server, backup)  # online: the server is running
    issued = [take(server, "jobs/a"), take(server, "jobs/a"), take(server, "jobs/b")]
    assert issued == [2, 3, 1]  # jobs/b exists only after the backup
    server.stop()

    floor, _ = restore(server, backup)
    assert floor >= max(issued)
    server.start()
    assert take(server, "jobs/a") == floor + 1  # not 2: the bug of issue #13
    assert take(server, "jobs/a") == floor + 2
    assert take(server, "jobs/b") == floor + 1  # a name absent from the backup does not restart at 1
    assert take(server, "jobs/new") == floor + 1
    server.stop()
    # The floor is stored: a plain restart keeps it.
    server.start()
    assert take(server, "jobs/new") == floor + 2


def test_a_watch_from_a_revision_before_the_restore_is_compacted_not_answered_with_other_events(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory().start()
    first = put(server, "cfg/mode", b"blue")
    backup = tmp_path / "backup.db"
    back_up(server, backup)
    lost = [put(server, "cfg/mode", b"green"), put(server, "cfg/mode", b"red")]  # not in the backup
    server.stop()

    _, revision = restore(server, backup)
    assert revision > lost[-1].mod_revision
    server.start()
    # A client that saw revision N before the restore resumes from N + 1: every such revision is
    # now compacted, so it is told to re-read instead of being sent different changes under it.
    for seen in (first.mod_revision, lost[0].mod_revision, lost[-1].mod_revision):
        error = watch_first(server, "cfg/mode", seen + 1)
        assert isinstance(error, grpc.RpcError)
        failure = decode(error)
        assert (failure.code, failure.reason) == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED")
        assert failure.metadata["oldest_revision"] == str(revision + 1)
    # The restored state is the backup's; the next change comes after every revision seen before.
    with grpc.insecure_channel(server.address) as channel:
        assert get(resource_pb2_grpc.ResourceServiceStub(channel), "cfg/mode").value == b"blue"
    after = put(server, "cfg/mode", b"violet")
    assert after.mod_revision == revision + 1
    assert after.version == first.version + 1
    replay = watch_first(server, "cfg/mode", revision + 1)
    assert isinstance(replay, resource_pb2.WatchResponse)
    assert replay.revision >= after.mod_revision


@pytest.mark.backend_specific("sqlite", reason="lockservice backup copies the SQLite file")
def test_an_online_backup_under_concurrent_writes_holds_every_write_acknowledged_before_it(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory().start()
    keys = [f"load/{i}" for i in range(6)]
    acked: dict[str, int] = dict.fromkeys(keys, 0)
    stop = threading.Event()
    errors: list[str] = []

    def write(key: str) -> None:
        with grpc.insecure_channel(server.address) as channel:
            resources = resource_pb2_grpc.ResourceServiceStub(channel)
            version = create(resources, key, f"{key}@1".encode()).version
            acked[key] = version
            while not stop.is_set():
                try:
                    version = update(
                        resources, key, f"{key}@{version + 1}".encode(), expected_version=version
                    ).version
                except grpc.RpcError as error:
                    errors.append(f"{decode(error).code}: {decode(error).message}")
                    return
                acked[key] = version

    writers = [threading.Thread(target=write, args=(key,)) for key in keys]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 30
    while min(acked.values()) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    before = dict(acked)  # acknowledged before the backup starts
    backup = tmp_path / "backup.db"
    succeeds("backup", "--db", str(server.db), str(backup))
    during = dict(acked)
    time.sleep(0.2)
    stop.set()
    for writer in writers:
        writer.join(timeout=30)
    assert errors == []
    assert min(before.values()) >= 5, "the load did not run"
    assert sum(acked.values()) > sum(during.values()), "writes went on while the backup ran"

    with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = dict(copy.execute("SELECT key, version FROM resources").fetchall())
        values = dict(copy.execute("SELECT key, value FROM resources").fetchall())
        (revision,) = copy.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
        (newest_event,) = copy.execute("SELECT max(revision) FROM events").fetchone()
        (newest_change,) = copy.execute("SELECT max(mod_revision) FROM resources").fetchone()
    for key in keys:
        # At most one write per key was committed but not yet acknowledged when `during` was read.
        assert before[key] <= rows[key] <= during[key] + 1, key
        assert values[key] == f"{key}@{rows[key]}".encode()  # each row whole, of one commit
    # One point in time: the revision counter, the event log and the rows agree.
    assert revision == newest_event == newest_change


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal: exit 2, nothing on standard output, one line on standard error."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lockservice: error: ")
    return lines[0].removeprefix("lockservice: error: ")


def test_restore_of_a_missing_or_corrupt_backup_exits_2_with_one_line_and_leaves_the_database(
    tmp_path: Path,
) -> None:
    db = tmp_path / "lockservice.db"
    missing = tmp_path / "nowhere.db"
    assert (
        one_error_line(run("restore", str(missing), "--db", str(db)))
        == f"the backup {missing} does not exist"
    )
    assert not db.exists()
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database\n" * 200)
    assert one_error_line(run("restore", str(corrupt), "--db", str(db))) == (
        f"{corrupt} is not a lockservice backup: file is not a database"
    )
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    assert one_error_line(run("restore", str(other), "--db", str(db))) == (
        f"{other} is not a lockservice backup: it has no lockservice tables"
    )
    assert not db.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["corrupt.db", "other.db"]


@pytest.mark.backend_specific("sqlite", reason="the SQLite file's lock shows a server holds it")
def test_restore_and_bump_refuse_a_database_a_running_server_holds(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory().start()
    assert take(server, "jobs/a") == 1
    backup = tmp_path / "backup.db"
    succeeds("backup", str(backup), env={"LOCKSERVICE_DB": str(server.db)})  # --db from the variable
    message = f"the database {server.db} is in use by a running lockservice server: stop it first"
    assert one_error_line(run("restore", str(backup), "--db", str(server.db), "--force")) == message
    assert one_error_line(run("bump", "--db", str(server.db))) == message
    assert take(server, "jobs/a") == 2  # untouched
    server.stop()
    assert one_error_line(run("restore", str(backup), "--db", str(server.db))) == (
        f"the database {server.db} exists: pass --force to replace it with the backup"
    )
    server.start()
    assert take(server, "jobs/a") == 3


@pytest.mark.backend_specific("postgres", reason="sessions connected to the database show a server runs")
def test_bump_refuses_a_postgres_database_a_server_is_connected_to(server_factory: ServerFactory) -> None:
    server = server_factory().start()
    assert take(server, "jobs/a") == 1
    reason = one_error_line(run("bump", "--store", server.store_url))
    assert re.fullmatch(
        r"\d+ other sessions? (is|are) connected to database lockservice_test_\w+: "
        r"stop every lockservice server first \(--force bumps anyway\)",
        reason,
    ), reason
    assert take(server, "jobs/a") == 2
    server.stop()
    floor, _ = floors_of(succeeds("bump", "--store", server.store_url))
    server.start()
    assert take(server, "jobs/a") == floor + 1
