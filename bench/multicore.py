"""One SQLite store, more than one core: what reads from other processes cost and whether they
contend (issue 20, item 5; the design note is "More cores" in docs/performance.md).

Fills a fresh store with 10,000 keys (100-byte values) through `SqliteStore`, then runs, for
each number of reader processes in `--readers` and with the writer off and on:

- N reader processes, each with its own connection to the file (WAL, the store's pragmas),
  reading random keys by the store's read of a key that is not in its cache (`SELECT` of the
  resource's columns, `row_to_resource`) in a loop;
- optionally one writer process: a `SqliteStore` (its writer thread, group commit, fsync per
  commit) putting random keys from 32 tasks, each put a write body like a blind UpdateResource's.

Every 100 reads a reader also checks the consistency a read worker would offer: the revision
its read sees in the file is at least the last one the writer had acknowledged (published in
shared memory after the write's answer) before the read began; `reads_behind_acknowledged`
counts the reads that saw less. It prints reads/s and the CPU each read cost its process
(process CPU time, so a loaded machine shows in the rate but much less in the CPU per read),
and puts/s beside them:

    .venv/bin/python -m bench.multicore --readers 1,2 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from lockservice.core.versions import write_version
from lockservice.store.base import WriteTxn
from lockservice.store.rows import RESOURCE_COLUMNS, row_to_resource
from lockservice.store.sqlite import SqliteStore

__all__ = ["main"]

_KEYS = 10_000
_VALUE = b"v" * 100
_WRITE_TASKS = 32


@dataclass(frozen=True)
class Share:
    """What one process did: operations, wall seconds, CPU seconds of the process."""

    ops: int
    seconds: float
    cpu_seconds: float
    checks: int = 0
    behind: int = 0


def _key(index: int) -> str:
    return f"bench/multicore/{index:05d}"


def _put_body(key: str) -> Any:
    def body(txn: WriteTxn) -> int:
        return write_version(txn, key, _VALUE, "application/octet-stream", "").mod_revision

    return body


async def _fill(path: str) -> None:
    store = await SqliteStore.open(path)
    try:
        await asyncio.gather(*(store.write(_put_body(_key(index))) for index in range(_KEYS)))
    finally:
        await store.close()


def _reader(path: str, seconds: float, acknowledged: Any, start: Any, out: Any) -> None:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA cache_size = -32768")
    sql = f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE key = ?"
    revision_sql = "SELECT value FROM meta WHERE name = 'revision'"
    rng = random.Random()
    keys = [_key(index) for index in range(_KEYS)]
    start.wait()
    cpu, began = time.process_time(), time.monotonic()
    deadline = began + seconds
    ops = checks = behind = 0
    while True:
        # Every 100 reads: a read started after the writer acknowledged a revision must see it.
        known = acknowledged.value
        if conn.execute(revision_sql).fetchone()[0] < known:
            behind += 1
        checks += 1
        for _ in range(100):
            rows = conn.execute(sql, (rng.choice(keys),)).fetchall()
            row_to_resource(rows[0])
        ops += 100
        if time.monotonic() >= deadline:
            break
    out.put(("reader", Share(ops, time.monotonic() - began, time.process_time() - cpu, checks, behind)))
    conn.close()


def _writer(path: str, seconds: float, acknowledged: Any, start: Any, out: Any) -> None:
    async def run() -> Share:
        store = await SqliteStore.open(path)
        try:
            rng = random.Random()
            ops = 0
            start.wait()
            cpu, began = time.process_time(), time.monotonic()
            deadline = began + seconds

            async def task() -> None:
                nonlocal ops
                while time.monotonic() < deadline:
                    revision = await store.write(_put_body(_key(rng.randrange(_KEYS))))
                    acknowledged.value = max(acknowledged.value, revision)  # as its caller is answered
                    ops += 1

            await asyncio.gather(*(task() for _ in range(_WRITE_TASKS)))
            return Share(ops, time.monotonic() - began, time.process_time() - cpu)
        finally:
            await store.close()

    out.put(("writer", asyncio.run(run())))


def _measure(path: str, readers: int, writer: bool, seconds: float) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(readers + (1 if writer else 0))
    out: Any = context.Queue()
    acknowledged = context.Value("q", 0, lock=False)
    arguments = (path, seconds, acknowledged, start, out)
    processes = [context.Process(target=_reader, args=arguments) for _ in range(readers)]
    if writer:
        processes.append(context.Process(target=_writer, args=arguments))
    for process in processes:
        process.start()
    shares = [out.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    read = [share for kind, share in shares if kind == "reader"]
    written = [share for kind, share in shares if kind == "writer"]
    reads = sum(share.ops for share in read)
    result: dict[str, Any] = {
        "readers": readers,
        "writer": writer,
        "reads_per_s": round(sum(share.ops / share.seconds for share in read)),
        "read_cpu_us": round(sum(share.cpu_seconds for share in read) / reads * 1e6, 1),
        "freshness_checks": sum(share.checks for share in read),
        "reads_behind_acknowledged": sum(share.behind for share in read),
    }
    if written:
        share = written[0]
        result["puts_per_s"] = round(share.ops / share.seconds)
        result["put_cpu_us"] = round(share.cpu_seconds / share.ops * 1e6, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.multicore", description=__doc__.split("\n")[0])
    parser.add_argument("--readers", default="1,2", help="reader process counts to run (default 1,2)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per configuration (default 5)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every configuration; medians")
    args = parser.parse_args(argv)
    counts = [int(count) for count in args.readers.split(",")]
    with tempfile.TemporaryDirectory(prefix="lockservice-multicore-") as workdir:
        path = f"{workdir}/multicore.db"
        asyncio.run(_fill(path))
        rounds: dict[tuple[int, bool], list[dict[str, Any]]] = {}
        for _ in range(args.repeat):
            for writer in (False, True):
                for readers in counts:
                    result = _measure(path, readers, writer, args.duration)
                    print(json.dumps(result), flush=True)
                    rounds.setdefault((readers, writer), []).append(result)
    print("| reader processes | writer | reads/s | CPU us per read | puts/s | CPU us per put | behind |")
    print("|---|---|---|---|---|---|---|")
    for (readers, writer), results in rounds.items():
        cells = [str(readers), "on" if writer else "off"]
        for field in ("reads_per_s", "read_cpu_us", "puts_per_s", "put_cpu_us"):
            values = [result[field] for result in results if field in result]
            cells.append(f"{statistics.median(values):,g}" if values else "-")
        behind = sum(result["reads_behind_acknowledged"] for result in results)
        cells.append(f"{behind} of {sum(result['freshness_checks'] for result in results)}")
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
