"""SqliteStore's WAL checkpoints, run by a thread of their own instead of inside commits.

Backend-specific because the WAL and its checkpoints are SQLite's.
"""

from __future__ import annotations

import asyncio
import sqlite3
import struct
import threading
from pathlib import Path

from lockservice.store.sqlite import SqliteStore
from tests.store.contract.bodies import put as _put

_MAX_PUTS = 200_000  # a bound on the loop, far more than the few intervals it waits for


def _wal_restarts(path: str) -> int:
    """The WAL header's checkpoint sequence number: it counts the times the WAL restarted."""
    with open(path + "-wal", "rb") as wal:
        header = wal.read(32)
    sequence: int = struct.unpack(">I", header[12:16])[0]
    return sequence


def test_the_wal_restarts_while_writes_never_stop(tmp_path: Path) -> None:
    """A checkpoint beside a busy writer cannot copy frames committed while it runs; unless the
    writer copies that tail, the WAL never restarts and grows with every write."""
    path = str(tmp_path / "db.sqlite")

    async def scenario() -> None:
        store = await SqliteStore.open(path)
        try:
            await store.write(_put("k", b"0"))
            restarts = _wal_restarts(path)
            done = 0

            async def writer(index: int) -> None:
                nonlocal done
                while store.checkpoints < 3 and done < _MAX_PUTS:
                    await store.write(_put(f"k{index}", b"v" * 100))
                    done += 1

            await asyncio.gather(*(writer(i) for i in range(32)))
            assert store.checkpoints >= 3, f"no checkpoints after {done} puts"
            assert _wal_restarts(path) > restarts
        finally:
            await store.close()

    asyncio.run(scenario())


def test_close_stops_the_checkpoint_thread_and_leaves_no_wal(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")

    async def scenario() -> None:
        store = await SqliteStore.open(path)
        for i in range(100):
            await store.write(_put(f"k{i}", b"v"))
        await store.close()

    asyncio.run(scenario())
    assert [t.name for t in threading.enumerate() if t.name == "sqlite-checkpoint"] == []
    # The last connection to close checkpointed everything into the file and removed the WAL.
    assert not Path(path + "-wal").exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM resources").fetchone()[0] == 100
