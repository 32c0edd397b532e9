"""Prometheus metrics, served on their own HTTP port (`--metrics-listen`), off by default.

Per call (from the call wrapper, `lockservice.rpc.calls`): calls by method and code, latency by
method, conflicts by reason, and how long waiting lock acquisitions waited. Sampled at scrape
time: open watches and how far the slowest one lags, leases ended at their deadline, and the
store's reachability, commit counters and statistics when the store reports them. When metrics
are off nothing here is created and the call path does not reach it.

No `*_created` series: prometheus_client would export one per counter and histogram (the time
it was created), a second family for each that no query here reads (`disable_created_metrics`,
process-wide, on import).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

import structlog
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lockservice.errors import StoreUnavailable
from lockservice.store.base import Capabilities
from lockservice.v1.lock_pb2 import AcquireLockRequest

__all__ = ["CountsExpiries", "CountsWatches", "RpcMetrics", "serve_metrics"]

disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

_log = structlog.get_logger("lockservice.metrics")

_CONFLICT_CODES = frozenset({"ABORTED", "ALREADY_EXISTS"})
# From a cached read (~100 us) to a long lock wait.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_STATS_EVERY_SECONDS = 5.0


class CountsWatches(Protocol):
    """The watch hub (`lockservice.core.watch.Watches`): open watches, the longest queue of
    responses a watcher has yet to read, and how many watchers were cut off for falling behind."""

    @property
    def active(self) -> int: ...
    @property
    def longest_backlog(self) -> int: ...
    @property
    def cut_off(self) -> int: ...


class CountsExpiries(Protocol):
    """The expiry task (`lockservice.core.expiry.Expirer`): leases it ended at their deadline."""

    @property
    def expired_leases(self) -> int: ...


class _CoreCollector(Collector):
    def __init__(self, watches: CountsWatches, expiries: CountsExpiries) -> None:
        self._watches = watches
        self._expiries = expiries

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("lockservice_watchers", "Open Watch streams.", value=self._watches.active)
        yield GaugeMetricFamily(
            "lockservice_watch_backlog_max",
            "Responses the slowest open watcher has yet to read (cut off beyond --watch-queue-size).",
            value=self._watches.longest_backlog,
        )
        yield CounterMetricFamily(
            "lockservice_watchers_cut_off",
            "Watchers ended with LIMIT_EXCEEDED for falling behind (queue or memory share).",
            value=self._watches.cut_off,
        )
        yield CounterMetricFamily(
            "lockservice_lease_expiries",
            "Leases this server's expiry task ended at their deadline.",
            value=self._expiries.expired_leases,
        )


class _CommitCollector(Collector):
    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        commits, bodies = self._counts()
        yield CounterMetricFamily(
            "lockservice_store_commits", "Store commits (one fsync each).", value=commits
        )
        yield CounterMetricFamily(
            "lockservice_store_committed_writes",
            "Write bodies committed; divided by commits, the group-commit batch size.",
            value=bodies,
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
        self._store_available = Gauge(
            "lockservice_store_available",
            "1 while the store is reachable, 0 while it is not (an embedded SQLite file: always 1).",
            registry=r,
        )
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

    def watch_core(self, watches: CountsWatches, expiries: CountsExpiries) -> None:
        """Samples the watch hub and the expiry task at every scrape."""
        self.registry.register(_CoreCollector(watches, expiries))

    def watch_store(self, capabilities: Capabilities) -> None:
        """Samples what the store reports about itself (each backend declares what it can)."""
        available = self._store_available
        available.set(1)
        if capabilities.watch_availability is not None:
            capabilities.watch_availability(lambda up: available.set(1 if up else 0))
        if capabilities.commit_counts is not None:
            self.registry.register(_CommitCollector(capabilities.commit_counts))
        if capabilities.observe_commits is not None:
            capabilities.observe_commits(self.observe_commit)

    async def sample_stats(self, stats: Callable[[], Awaitable[dict[str, int]]]) -> None:
        """Refreshes the store gauges from `stats` (`Capabilities.stats`) every few seconds,
        until cancelled."""
        while True:
            try:
                for name, value in (await stats()).items():
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
