"""The multi-process load generator: W worker processes, each one asyncio loop with grpc.aio
channels (one per server) and C concurrent calls in flight.

A run has three phases that every worker passes together (two process barriers, which the
parent also joins, so the parent reads server CPU at exactly the edges of the measured window):
set-up (open streams, grant leases: not measured), the measured run (until `deadline`; calls in
flight then still finish and count), and the workload's own after-run checks. Times are
`time.monotonic()` (CLOCK_MONOTONIC), so they compare across processes on one machine.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import random
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier

import grpc

_BARRIER_TIMEOUT = 660.0  # longer than any set-up (watch-ack opens 10,000 streams)
_ERROR_SAMPLES = 5


@dataclass(frozen=True)
class Sizes:
    """The workloads' dimensions (the issue's values by default; `--smoke` shrinks some)."""

    keys: int = 10_000
    value_bytes: int = 100
    cas_keys: int = 1_000
    lock_names: int = 100
    waiters: int = 16
    watchers: int = 100
    watch_rate: float = 50.0
    leases: int = 10_000
    lease_ttl: int = 60
    stored_keys: int = 0  # keys stored before the run (the 1,000,000-keys target)
    stored_leases: int = 0  # live leases stored before the run (the 1,000,000-leases target)
    naive_clients: int = 64  # cas-hot-naive's clients, split over the workers


@dataclass(frozen=True)
class RunSpec:
    workload: str
    targets: tuple[str, ...]
    workers: int
    concurrency: int
    duration: float
    sizes: Sizes
    request_ids: bool = False


@dataclass
class WorkerResult:
    """What one worker process measured; the parent merges these."""

    ops: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    events: list[tuple[int, float, float]] = field(default_factory=list)
    cpu_seconds: float = 0.0
    failure: str = ""


class WorkerContext:
    """What a workload's worker function gets: channels, the clock, and the recorder."""

    def __init__(self, spec: RunSpec, index: int, start: Barrier, stop: Barrier) -> None:
        self.spec = spec
        self.sizes = spec.sizes
        self.index = index
        self.concurrency = spec.concurrency
        self.channels = [grpc.aio.insecure_channel(target) for target in spec.targets]
        self.result = WorkerResult()
        self.deadline = float("inf")
        self._start_barrier = start
        self._stop_barrier = stop
        self._cpu_start = 0.0

    def channel(self, slot: int) -> grpc.aio.Channel:
        """The channel of a task: tasks are spread round-robin over the servers (replicas)."""
        return self.channels[(self.index * self.concurrency + slot) % len(self.channels)]

    def share(self, total: int) -> range:
        """This worker's part of `total` items (e.g. watchers or leases), split evenly."""
        workers = self.spec.workers
        return range(self.index * total // workers, (self.index + 1) * total // workers)

    def rng(self, slot: int) -> random.Random:
        return random.Random(self.index * 100_003 + slot)

    def request_id(self) -> str:
        return str(uuid.uuid4()) if self.spec.request_ids else ""

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def start(self) -> None:
        """Ends set-up: waits for every worker, then the measured window opens."""
        await asyncio.to_thread(self._start_barrier.wait, _BARRIER_TIMEOUT)
        self._cpu_start = time.process_time()
        self.deadline = time.monotonic() + self.spec.duration

    async def stop(self) -> None:
        """Closes the measured window once every worker got here."""
        self.result.cpu_seconds = time.process_time() - self._cpu_start
        await asyncio.to_thread(self._stop_barrier.wait, _BARRIER_TIMEOUT)

    def done(self, started: float, count: int = 1) -> None:
        """Counts `count` completed operations, the last one started at `started`."""
        self.result.ops += count
        self.result.latencies_ms.append((time.monotonic() - started) * 1000)

    def count(self, name: str, increment: int = 1) -> None:
        self.result.counters[name] = self.result.counters.get(name, 0) + increment

    def fail(self, error: BaseException) -> None:
        self.result.errors += 1
        if len(self.result.error_samples) < _ERROR_SAMPLES:
            if isinstance(error, grpc.aio.AioRpcError):
                self.result.error_samples.append(f"{error.code().name}: {error.details()}")
            else:
                self.result.error_samples.append(f"{type(error).__name__}: {error}")

    async def repeat(
        self, operation: Callable[[int, random.Random], Awaitable[bool]], slots: range | None = None
    ) -> None:
        """Runs one task per slot (default: `concurrency` of them), each calling `operation(slot,
        rng)` until the deadline; an operation that returns True is counted with its latency
        (False: abandoned at the deadline)."""

        async def task(slot: int) -> None:
            rng = self.rng(slot)
            while self.running():
                started = time.monotonic()
                try:
                    if await operation(slot, rng):
                        self.done(started)
                except grpc.aio.AioRpcError as error:
                    self.fail(error)
                    await asyncio.sleep(0.001)  # a dead server must not turn this into a busy loop

        if slots is None:
            slots = range(self.concurrency)
        await asyncio.gather(*(task(slot) for slot in slots))

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


WorkerFunction = Callable[[WorkerContext], Awaitable[None]]


def _worker_process(
    spec: RunSpec, index: int, start: Barrier, stop: Barrier, results: multiprocessing.Queue[WorkerResult]
) -> None:
    from bench.workloads import WORKLOADS

    async def main() -> WorkerResult:
        context = WorkerContext(spec, index, start, stop)
        try:
            await WORKLOADS[spec.workload].worker(context)
        finally:
            await context.close()
        return context.result

    try:
        result = asyncio.run(main())
    except BaseException:
        start.abort()
        stop.abort()
        result = WorkerResult(failure=traceback.format_exc())
    results.put(result)


def run_load(
    spec: RunSpec, on_start: Callable[[], None], on_stop: Callable[[], None]
) -> tuple[float, list[WorkerResult]]:
    """Runs the workers; returns the measured window's length in seconds and their results.
    `on_start` and `on_stop` run in the parent at the window's edges."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(spec.workers + 1)
    stop = context.Barrier(spec.workers + 1)
    results: multiprocessing.Queue[WorkerResult] = context.Queue()
    processes = [
        context.Process(target=_worker_process, args=(spec, index, start, stop, results), daemon=True)
        for index in range(spec.workers)
    ]
    for process in processes:
        process.start()
    elapsed = 0.0
    try:
        start.wait(_BARRIER_TIMEOUT)
        began = time.monotonic()
        on_start()
        stop.wait(spec.duration + _BARRIER_TIMEOUT)
        on_stop()
        elapsed = time.monotonic() - began
    except threading.BrokenBarrierError:
        pass  # a worker failed; its result carries the traceback
    collected: list[WorkerResult] = []
    for _ in processes:
        try:
            collected.append(results.get(timeout=_BARRIER_TIMEOUT))
        except queue.Empty:
            collected.append(WorkerResult(failure="worker sent no result"))
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join(timeout=10)
    return elapsed, collected


def merged_counters(results: list[WorkerResult]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for result in results:
        for name, value in result.counters.items():
            totals[name] = totals.get(name, 0) + value
    return totals


def worker_failures(results: list[WorkerResult]) -> list[str]:
    return [result.failure for result in results if result.failure]
