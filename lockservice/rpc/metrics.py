"""Prometheus metrics, served on their own HTTP port (`--metrics-listen`), off by default.

Per call (from the call wrapper, `lockservice.rpc.calls`): calls by method and code, latency by
method, conflicts by reason, and how long waiting lock acquisitions waited. Sampled at scrape
time: open watches, and the store's commit counters and statistics when the store reports them.
When metrics are off nothing here is created and the call path does not reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import structlog
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from lockservice.errors import StoreUnavailable
from lockservice.v1.lock_pb2 import AcquireLockRequest

__all__ = ["CommitCounters", "ReportsCommits", "ReportsStats", "RpcMetrics", "serve_metrics"]

_log = structlog.get_logger("lockservice.metrics")

_CONFLICT_CODES = frozenset({"ABORTED", "ALREADY_EXISTS"})
# From a cached read (~100 us) to a long lock wait.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_STATS_EVERY_SECONDS = 5.0


@runtime_checkable
class CommitCounters(Protocol):
    """A store that counts its commits and the writes they carried (group commit)."""

    commits: int
    committed_bodies: int


@runtime_checkable
class ReportsCommits(Protocol):
    """A store that calls `observer(batch_size, seconds)` after every commit."""

    def observe_commits(self, observer: Callable[[int, float], None]) -> None: ...


@runtime_checkable
class ReportsStats(Protocol):
    """A store that can count what it holds: {"leases", "locks_held", "waiters", "size_bytes"}."""

    async def stats(self) -> dict[str, int]: ...


class _CommitCollector(Collector):
    def __init__(self, store: CommitCounters) -> None:
        self._store = store

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "lockservice_store_commits", "Store commits (one fsync each).", value=self._store.commits
        )
        yield CounterMetricFamily(
            "lockservice_store_committed_writes",
            "Write bodies committed; divided by commits, the group-commit batch size.",
            value=self._store.committed_bodies,
        )


class RpcMetrics:
    """The registry and every metric; `observe_call` is the per-call entry point."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            with contextlib.suppress(ValueError):
                self.registry.register(collector)
        r = self.registry
        self._calls = Counter(
            "lockservice_rpc_calls", "Finished RPCs by method and gRPC code.", ["method", "code"], registry=r
        )
        self._latency = Histogram(
            "lockservice_rpc_duration_seconds",
            "RPC latency by method (streams: their whole life).",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._conflicts = Counter(
            "lockservice_conflicts", "ABORTED and ALREADY_EXISTS answers by reason.", ["reason"], registry=r
        )
        self._lock_wait = Histogram(
            "lockservice_lock_wait_seconds",
            "How long an AcquireLock with a wait_timeout took to get the lock or give up.",
            ["outcome"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.watchers = Gauge("lockservice_watchers", "Open Watch streams.", registry=r)
        self._store_gauges = {
            name: Gauge(f"lockservice_store_{name}", text, registry=r)
            for name, text in (
                ("leases", "Live leases."),
                ("locks_held", "Locks held."),
                ("waiters", "Callers queued for locks."),
                ("size_bytes", "Size of the stored data, in bytes."),
            )
        }
        self._commit_batch = Histogram(
            "lockservice_store_commit_batch_size", "Writes per commit.", buckets=_BATCH_BUCKETS, registry=r
        )
        self._commit_latency = Histogram(
            "lockservice_store_commit_duration_seconds",
            "Time to run and commit one batch of writes.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # Children cached by label values: `labels()` takes a lock and builds a key each time.
        self._call_children: dict[tuple[str, str], Any] = {}
        self._latency_children: dict[str, Any] = {}

    def observe_call(self, method: str, request: Any, code: str, reason: str, seconds: float) -> None:
        calls = self._call_children.get((method, code))
        if calls is None:
            calls = self._call_children[method, code] = self._calls.labels(method, code)
        calls.inc()
        latency = self._latency_children.get(method)
        if latency is None:
            latency = self._latency_children[method] = self._latency.labels(method)
        latency.observe(seconds)
        if code in _CONFLICT_CODES:
            self._conflicts.labels(reason).inc()
        # The request may be a `CorruptMessage` (bytes that did not parse): only a parsed
        # AcquireLockRequest says whether it waited.
        if isinstance(request, AcquireLockRequest) and request.HasField("wait_timeout"):
            outcome = "acquired" if code == "OK" else "timed_out" if reason == "LOCK_HELD" else "failed"
            self._lock_wait.labels(outcome).observe(seconds)

    def observe_commit(self, batch_size: int, seconds: float) -> None:
        self._commit_batch.observe(batch_size)
        self._commit_latency.observe(seconds)

    def watch_store(self, store: object) -> None:
        """Samples what the store reports about itself (each backend reports what it can)."""
        if isinstance(store, CommitCounters):
            self.registry.register(_CommitCollector(store))
        if isinstance(store, ReportsCommits):
            store.observe_commits(self.observe_commit)

    async def sample_stats(self, store: ReportsStats) -> None:
        """Refreshes the store gauges every few seconds, until cancelled."""
        while True:
            try:
                for name, value in (await store.stats()).items():
                    gauge = self._store_gauges.get(name)
                    if gauge is not None:
                        gauge.set(value)
            except StoreUnavailable:
                pass  # the store reports its outage itself, once
            except Exception:
                _log.warning("store statistics unavailable", exc_info=True)
            await asyncio.sleep(_STATS_EVERY_SECONDS)


def serve_metrics(metrics: RpcMetrics, listen: str) -> Callable[[], None]:
    """Serves /metrics on `listen` (HOST:PORT) from a thread; returns the function that stops it.
    Raises OSError when the address cannot be bound."""
    host, _, port = listen.rpartition(":")
    server, thread = start_http_server(int(port), host.strip("[]"), registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
