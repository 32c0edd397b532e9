"""Where a lock hand-over's time goes, step by step (issue 20, item 2).

Runs `lockservice serve` on a fresh SQLite file with timestamps (time.perf_counter_ns, which is
CLOCK_MONOTONIC, so the server's and the clients' stamps compare) wrapped around the steps of
the hand-over path, drives the `lock-handoff` workload against it (16 waiters on one lock, 2
client processes of 8, each waiter releasing as soon as it is granted), pairs the stamps by
fencing token (release of token k -> grant of token k+1) and prints the median of each step:

    .venv/bin/python -m bench.handoff_steps --duration 10

The wrappers cost a few microseconds per hand-over (a list append and a clock read per stamp,
one Python call per wrapped function); the server's figures are a measurement of the path, not
of its throughput, which `python -m bench --workloads lock-handoff` measures without them.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextvars
import itertools
import json
import multiprocessing
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

__all__ = ["main"]

_WAITERS = 16
_CLIENTS = 2

# The steps of one hand-over, release of token k sent -> grant of token k+1 received, as pairs
# of stamps; the first stamp is keyed by the released token, the rest as noted in `_pair`.
STEPS: list[tuple[str, str, str]] = [
    ("client_sent", "server_recv", "client send -> server handler entered (gRPC, both sides)"),
    ("server_recv", "submit", "handler -> write submitted (validation, request decoding)"),
    ("submit", "batch_start", "writer queue wait (thread wake-up, GIL, batch before it)"),
    ("batch_start", "body", "BEGIN, pruning, bodies ahead in the batch"),
    ("body", "commit_begin", "release + hand-over statements (and bodies after it)"),
    ("commit_begin", "commit_end", "COMMIT: WAL write + fsync"),
    ("commit_end", "resolve", "after COMMIT: counters, observers"),
    ("resolve", "settle", "thread hop writer -> event loop (call_soon_threadsafe)"),
    ("settle", "notice", "settle: answers, then the notices"),
    ("notice", "resumed", "the waiter's task wakes (and whatever the loop runs before it)"),
    ("resumed", "answered", "acquire returns: views, proto, the call's wrapper"),
    ("answered", "client_recv", "grant answer sent -> client receives it (gRPC, both sides)"),
    ("client_recv", "client_sent", "client: grant received -> next release sent"),
]

# Inside "settle -> waiter's task wakes": the releasing call's task, woken by the same commit.
SIDE_STEPS: list[tuple[str, str]] = [
    ("settle", "(beside) settle -> the release's task resumes"),
    ("release_resumed", "(beside) the release's answer: its task, to its handler's return"),
]


# -- the traced server ------------------------------------------------------------------------------


def _serve_traced(stamp_file: str, serve_args: list[str]) -> int:
    """Runs `lockservice serve serve_args` with stamps around the hand-over's steps, written to
    `stamp_file` (JSON) when the process exits."""
    from lockservice import cli
    from lockservice.core.locks import handoff as handoff_module
    from lockservice.core.locks import queue as queue_module
    from lockservice.core.locks import service as service_module
    from lockservice.model import LockGranted
    from lockservice.rpc.locks import LockServicer
    from lockservice.store.sqlite import store as store_module
    from lockservice.store.sqlite import writer as writer_module

    stamps: list[tuple[str, int, int]] = []
    batch_of_token: dict[int, int] = {}
    batch_of_pending: dict[int, int] = {}
    current = [0]
    releasing: contextvars.ContextVar[int] = contextvars.ContextVar("releasing", default=0)
    clock = time.perf_counter_ns

    def write_stamps() -> None:
        Path(stamp_file).write_text(json.dumps({"stamps": stamps, "batch_of_token": batch_of_token}))

    atexit.register(write_stamps)

    release = LockServicer.ReleaseLock
    acquire = LockServicer.AcquireLock

    async def traced_release(self: LockServicer, request: Any, context: Any) -> Any:
        stamps.append(("server_recv", request.token, clock()))
        releasing.set(request.token)
        answer = await release(self, request, context)
        stamps.append(("release_answered", request.token, clock()))
        return answer

    async def traced_acquire(self: LockServicer, request: Any, context: Any) -> Any:
        answer = await acquire(self, request, context)
        stamps.append(("answered", answer.token, clock()))
        return answer

    setattr(LockServicer, "ReleaseLock", traced_release)  # noqa: B010 - a method, replaced
    setattr(LockServicer, "AcquireLock", traced_acquire)  # noqa: B010

    write = store_module.SqliteStore.write

    async def traced_write(self: Any, body: Callable[[Any], Any]) -> Any:
        token = releasing.get()
        if not token:
            return await write(self, body)
        stamps.append(("submit", token, clock()))
        outcome = await write(self, body)
        stamps.append(("release_resumed", token, clock()))
        return outcome

    store_module.SqliteStore.write = traced_write  # type: ignore[method-assign]

    settle = store_module.SqliteStore._settle

    def traced_settle(self: Any, items: list[Any], revision: int, compacted: int) -> None:
        stamps.append(("settle", batch_of_pending.get(id(items[0]), 0), clock()))
        settle(self, items, revision, compacted)

    store_module.SqliteStore._settle = traced_settle  # type: ignore[method-assign]

    class TracedConnection:
        """The writer's connection, with stamps around COMMIT."""

        def __init__(self, conn: Any) -> None:
            self._conn = conn

        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "COMMIT":
                stamps.append(("commit_begin", current[0], clock()))
                result = self._conn.execute(sql, *args)
                stamps.append(("commit_end", current[0], clock()))
                return result
            return self._conn.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

    start = writer_module.Writer.start

    def traced_start(self: Any, conn: Any, revision: int, compacted: int, token_floor: int) -> None:
        start(self, cast(sqlite3.Connection, TracedConnection(conn)), revision, compacted, token_floor)

    writer_module.Writer.start = traced_start  # type: ignore[method-assign]

    commit_batch = writer_module.Writer._commit_batch

    def traced_commit_batch(self: Any, conn: Any, batch: list[Any], revision: int) -> int:
        current[0] += 1
        stamps.append(("batch_start", current[0], clock()))
        for pending in batch:
            batch_of_pending[id(pending)] = current[0]
        return commit_batch(self, conn, batch, revision)

    writer_module.Writer._commit_batch = traced_commit_batch  # type: ignore[method-assign]

    resolve = writer_module.Writer._resolve

    def traced_resolve(self: Any, batch: list[Any], revision: int) -> None:
        stamps.append(("resolve", current[0], clock()))
        resolve(self, batch, revision)

    writer_module.Writer._resolve = traced_resolve  # type: ignore[method-assign]

    give_back = handoff_module.give_back

    def traced_give_back(txn: Any, state: Any) -> None:
        stamps.append(("body", state.token, clock()))
        batch_of_token[state.token] = current[0]
        give_back(txn, state)

    setattr(service_module, "give_back", traced_give_back)  # noqa: B010 - imported by name there

    on_notices = queue_module.Queue._on_notices

    def traced_on_notices(self: Any, notices: list[Any]) -> None:
        for notice in notices:
            if isinstance(notice, LockGranted):
                stamps.append(("notice", notice.lock.state.token, clock()))
        on_notices(self, notices)

    queue_module.Queue._on_notices = traced_on_notices  # type: ignore[method-assign]

    wait = queue_module.Queue.wait

    async def traced_wait(self: Any, *args: Any) -> Any:
        view = await wait(self, *args)
        stamps.append(("resumed", view.state.token, clock()))
        return view

    queue_module.Queue.wait = traced_wait  # type: ignore[method-assign,assignment]

    # SIGTERM ends the server gracefully (its drain), so the stamps are written at exit.
    return cli.main(["serve", *serve_args])


# -- the clients ------------------------------------------------------------------------------------


def _client_process(target: str, index: int, waiters: int, seconds: float, out: Any) -> None:
    import grpc
    from google.protobuf.duration_pb2 import Duration

    from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc

    stamps: list[tuple[str, int, int]] = []
    clock = time.perf_counter_ns

    async def run() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            leases = lease_pb2_grpc.LeaseServiceStub(channel)
            locks = lock_pb2_grpc.LockServiceStub(channel)
            deadline = time.monotonic() + seconds

            async def waiter(slot: int) -> None:
                lease = await leases.GrantLease(
                    lease_pb2.GrantLeaseRequest(ttl_seconds=300, holder=f"steps-{index}-{slot}"), timeout=30
                )
                acquire = lock_pb2.AcquireLockRequest(
                    name="steps/hot-lock",
                    lease_id=lease.lease_id,
                    holder=f"steps-{index}-{slot}",
                    wait_timeout=Duration(seconds=30),
                )
                while time.monotonic() < deadline:
                    lock = await locks.AcquireLock(acquire, timeout=60)
                    stamps.append(("client_recv", lock.token, clock()))
                    stamps.append(("client_sent", lock.token, clock()))
                    await locks.ReleaseLock(
                        lock_pb2.ReleaseLockRequest(name="steps/hot-lock", token=lock.token), timeout=30
                    )

            await asyncio.gather(*(waiter(slot) for slot in range(waiters)))

    asyncio.run(run())
    out.put(stamps)


# -- pairing and the table ------------------------------------------------------------------------


def _steps(server: dict[str, Any], client: list[tuple[str, int, int]]) -> dict[str, list[float]]:
    """Microseconds of each step, one value per complete hand-over k -> k+1."""
    by_token: dict[str, dict[int, int]] = {}
    by_batch: dict[str, dict[int, int]] = {}
    for step, key, ns in [*server["stamps"], *client]:
        if step in ("batch_start", "commit_begin", "commit_end", "resolve", "settle"):
            by_batch.setdefault(step, {})[key] = ns
        else:
            by_token.setdefault(step, {})[key] = ns
    batch_of_token = {int(token): batch for token, batch in server["batch_of_token"].items()}
    released_keys = ("client_sent", "server_recv", "submit", "body")
    granted_keys = ("notice", "resumed", "answered", "client_recv")
    out: dict[str, list[float]] = {step: [] for step, _, _ in STEPS}
    out["cycle"] = []
    for _, label in SIDE_STEPS:
        out[label] = []
    for token, batch in batch_of_token.items():
        stamp: dict[str, int] = {}
        try:
            for key in released_keys:
                stamp[key] = by_token[key][token]
            for key in ("batch_start", "commit_begin", "commit_end", "resolve", "settle"):
                stamp[key] = by_batch[key][batch]
            for key in granted_keys:
                stamp[key] = by_token[key][token + 1]
            previous_grant = by_token["client_recv"][token]
        except KeyError:
            continue  # the first or last of the run, or a release that handed to nobody
        for first, second, _ in STEPS[:-1]:
            out[first].append((stamp[second] - stamp[first]) / 1000)
        out["client_recv"].append((stamp["client_sent"] - previous_grant) / 1000)
        out["cycle"].append((stamp["client_recv"] - previous_grant) / 1000)
        resumed, answered = (
            by_token.get(key, {}).get(token) for key in ("release_resumed", "release_answered")
        )
        if resumed is not None and answered is not None:
            marks = [stamp["settle"], resumed, answered]
            for (_, label), begin, end in zip(SIDE_STEPS, marks[:-1], marks[1:], strict=True):
                out[label].append((end - begin) / 1000)
    return out


def _table(steps: dict[str, list[float]]) -> str:
    lines = ["| step | median us | p90 us |", "|---|---|---|"]
    for first, _, label in STEPS:
        values = steps[first]
        lines.append(f"| {label} | {statistics.median(values):.0f} | {_p90(values):.0f} |")
    for _, label in SIDE_STEPS:
        if steps[label]:
            lines.append(f"| {label} | {statistics.median(steps[label]):.0f} | {_p90(steps[label]):.0f} |")
    sum_of_medians = sum(statistics.median(steps[first]) for first, _, _ in STEPS)
    cycle = steps["cycle"]
    lines.append(f"| sum of the medians | {sum_of_medians:.0f} | |")
    lines.append(
        f"| whole cycle (grant k -> grant k+1) | {statistics.median(cycle):.0f} | {_p90(cycle):.0f} |"
    )
    return "\n".join(lines)


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def _drive(duration: float, extra_args: list[str]) -> int:
    from bench.ports import free_port

    with tempfile.TemporaryDirectory(prefix="lockservice-steps-") as workdir:
        target = f"127.0.0.1:{free_port()}"
        stamp_file = os.path.join(workdir, "stamps.json")
        serve_args = [
            "--db",
            f"{workdir}/steps.db",
            "--listen",
            target,
            "--log-level",
            "warning",
            *extra_args,
        ]
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.handoff_steps", "--serve", stamp_file, *serve_args]
        )
        try:
            _wait_serving(target, server)
            context = multiprocessing.get_context("spawn")
            results: Any = context.Queue()
            clients = [
                context.Process(
                    target=_client_process, args=(target, index, _WAITERS // _CLIENTS, duration, results)
                )
                for index in range(_CLIENTS)
            ]
            for process in clients:
                process.start()
            client_stamps = list(
                itertools.chain.from_iterable(results.get(timeout=duration + 120) for _ in clients)
            )
            for process in clients:
                process.join(timeout=30)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        server_stamps = json.loads(Path(stamp_file).read_text())
    steps = _steps(server_stamps, client_stamps)
    cycles = len(steps["cycle"])
    print(f"{cycles} hand-overs paired in {duration:g} s ({cycles / duration:.0f}/s with the stamps on)")
    print(_table(steps))
    return 0


def _floor(calls: int) -> int:
    """The floor of a hand-over on this machine: one serial gRPC round trip to the bare echo
    server (the release there and the grant back) plus one SQLite commit of one row with
    synchronous = FULL in WAL mode (its fsync), each measured `calls` times."""
    import grpc

    from bench.echo import METHOD
    from bench.ports import free_port

    target = f"127.0.0.1:{free_port()}"
    server = subprocess.Popen([sys.executable, "-m", "bench.echo", "--listen", target])
    try:
        _wait_serving(target, server, echo=True)

        async def ping_pong() -> list[float]:
            async with grpc.aio.insecure_channel(target) as channel:
                call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
                times = []
                for _ in range(calls):
                    started = time.perf_counter_ns()
                    await call(b"", timeout=10)
                    times.append((time.perf_counter_ns() - started) / 1000)
                return times

        round_trips = asyncio.run(ping_pong())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    with tempfile.TemporaryDirectory(prefix="lockservice-floor-") as workdir:
        conn = sqlite3.connect(f"{workdir}/floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)")
        conn.execute("INSERT INTO t VALUES (1, 0)")
        commits = []
        for value in range(calls):
            started = time.perf_counter_ns()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE t SET v = ? WHERE k = 1", (value,))
            conn.execute("COMMIT")
            commits.append((time.perf_counter_ns() - started) / 1000)
        conn.close()
    trip, commit = statistics.median(round_trips), statistics.median(commits)
    print("| floor step | median us | p90 us |\n|---|---|---|")
    print(f"| serial gRPC round trip to the echo server | {trip:.0f} | {_p90(round_trips):.0f} |")
    print(f"| SQLite commit of one row (WAL, synchronous = FULL) | {commit:.0f} | {_p90(commits):.0f} |")
    print(f"| sum: the fastest hand-over, {1e6 / (trip + commit):.0f}/s at most | {trip + commit:.0f} | |")
    return 0


def _wait_serving(target: str, process: subprocess.Popen[bytes], *, echo: bool = False) -> None:
    from bench.harness import wait_ready  # not at import: the traced server's process needs none of it

    wait_ready(target, process, health=not echo)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--serve"]:
        return _serve_traced(args[1], args[2:])
    parser = argparse.ArgumentParser(prog="python -m bench.handoff_steps", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of hand-overs (default 10)")
    parser.add_argument(
        "--floor", type=int, metavar="N", help="instead: N serial echo round trips and N one-row commits"
    )
    parser.add_argument("serve_args", nargs="*", help="more `lockservice serve` flags, after --")
    parsed = parser.parse_args(args)
    if parsed.floor:
        return _floor(parsed.floor)
    return _drive(parsed.duration, parsed.serve_args)


if __name__ == "__main__":
    raise SystemExit(main())
