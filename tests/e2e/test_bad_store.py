"""A store that cannot be opened stops `lockservice serve` with ONE line on stderr that names the
file (or the PostgreSQL host and database, never the password) and the cause, and exit code 2:
the same as any other bad setting, so a supervisor or an operator sees what to fix at a glance.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
from pathlib import Path

from bench.ports import free_port
from lockservice.store.sqlite import SqliteStore
from tests.conftest import LOCKSERVICE, closed_port
from tests.e2e.mounts import fill, read_only, small_disk


def _serve(*storage: str, timeout: float = 60.0) -> tuple[int, list[str], float]:
    """Runs `lockservice serve` until it exits; returns its exit code, stderr lines and duration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_")}
    started = time.monotonic()
    result = subprocess.run(
        [LOCKSERVICE, "serve", "--listen", f"127.0.0.1:{free_port()}", *storage, "--log-format", "json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return result.returncode, result.stderr.splitlines(), time.monotonic() - started


def _make_database(path: Path) -> None:
    """A real lockservice database, checkpointed into its one file."""

    async def create() -> None:
        store = await SqliteStore.open(str(path))
        await store.close()

    asyncio.run(create())
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _assert_one_line(code: int, lines: list[str], *fragments: str) -> None:
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("lockservice: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines


def test_a_file_of_garbage(tmp_path: Path) -> None:
    db = tmp_path / "lockservice.db"
    db.write_bytes(os.urandom(16 * 1024))
    _assert_one_line(*_serve("--db", str(db))[:2], str(db), "not a SQLite database")


def test_a_truncated_file(tmp_path: Path) -> None:
    db = tmp_path / "lockservice.db"
    _make_database(db)
    with db.open("r+b") as file:
        file.truncate(db.stat().st_size // 2)
    _assert_one_line(*_serve("--db", str(db))[:2], str(db), "corrupt")


def test_a_read_only_directory(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    db = directory / "lockservice.db"
    _make_database(db)
    with read_only(directory):
        _assert_one_line(*_serve("--db", str(db))[:2], str(db), "read-only")


def test_a_full_disk(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        filler = fill(disk)
        db = disk / "lockservice.db"
        _assert_one_line(*_serve("--db", str(db))[:2], str(db), "disk is full")
        filler.unlink()


def test_an_unreachable_postgresql(tmp_path: Path) -> None:
    """Fails after a bounded wait (10 s: time for a database started beside it to accept), not
    at once, so `docker compose up` starting both does not fail on the race."""
    with closed_port() as port:
        code, lines, seconds = _serve("--store", f"postgresql://lock:s3cret@127.0.0.1:{port}/orders")
    _assert_one_line(code, lines, f"127.0.0.1:{port}", "orders", "refused")
    assert "s3cret" not in lines[0]
    assert 8 <= seconds < 30


def test_a_missing_directory(tmp_path: Path) -> None:
    db = tmp_path / "absent" / "lockservice.db"
    _assert_one_line(*_serve("--db", str(db))[:2], str(tmp_path / "absent"), "does not exist")
