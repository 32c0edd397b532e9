"""The metrics registry: per-call observations, and what a store reports about itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import generate_latest

from lockservice.rpc.metrics import RpcMetrics
from lockservice.store.base import Capabilities
from lockservice.v1 import lock_pb2, resource_pb2


class ReportingStore:
    """A store with every optional report: counters, a commit observer and statistics."""

    def __init__(self) -> None:
        self.observer: Callable[[int, float], None] | None = None
        self.capabilities = Capabilities(
            observe_commits=self.observe_commits, stats=self.stats, commit_counts=lambda: (3, 7)
        )

    def observe_commits(self, observer: Callable[[int, float], None]) -> None:
        self.observer = observer

    async def stats(self) -> dict[str, int]:
        return {"leases": 2, "locks_held": 1, "waiters": 4, "size_bytes": 8192}


def sample(metrics: RpcMetrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    value: float | None = metrics.registry.get_sample_value(name, labels or {})
    return value


def test_calls_conflicts_and_lock_waits() -> None:
    metrics = RpcMetrics()
    get = resource_pb2.GetResourceRequest(key="k")
    metrics.observe_call("GetResource", get, "OK", "", 0.002)
    metrics.observe_call("GetResource", get, "NOT_FOUND", "RESOURCE_NOT_FOUND", 0.001)
    update = resource_pb2.UpdateResourceRequest(key="k")
    metrics.observe_call("UpdateResource", update, "ABORTED", "VERSION_MISMATCH", 0.003)
    waiting = lock_pb2.AcquireLockRequest(name="n")
    waiting.wait_timeout.FromSeconds(1)
    metrics.observe_call("AcquireLock", waiting, "ABORTED", "LOCK_HELD", 1.0)
    metrics.observe_call("AcquireLock", lock_pb2.AcquireLockRequest(name="n"), "OK", "", 0.001)

    assert sample(metrics, "lockservice_rpc_calls_total", {"method": "GetResource", "code": "OK"}) == 1
    assert sample(metrics, "lockservice_rpc_calls_total", {"method": "GetResource", "code": "NOT_FOUND"}) == 1
    assert sample(metrics, "lockservice_rpc_duration_seconds_count", {"method": "GetResource"}) == 2
    assert sample(metrics, "lockservice_conflicts_total", {"reason": "VERSION_MISMATCH"}) == 1
    assert sample(metrics, "lockservice_conflicts_total", {"reason": "RESOURCE_NOT_FOUND"}) is None
    assert sample(metrics, "lockservice_lock_wait_seconds_count", {"outcome": "timed_out"}) == 1
    # An acquire that does not wait is no lock wait.
    assert sample(metrics, "lockservice_lock_wait_seconds_count", {"outcome": "acquired"}) is None


def test_what_the_store_reports() -> None:
    metrics = RpcMetrics()
    store = ReportingStore()
    metrics.watch_store(store.capabilities)
    assert sample(metrics, "lockservice_store_commits_total") == 3
    assert sample(metrics, "lockservice_store_committed_writes_total") == 7
    assert store.observer is not None
    store.observer(16, 0.004)
    assert sample(metrics, "lockservice_store_commit_batch_size_sum") == 16
    assert sample(metrics, "lockservice_store_commit_duration_seconds_count") == 1

    async def one_sample() -> None:
        task = asyncio.get_running_loop().create_task(metrics.sample_stats(store.stats))
        await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(one_sample())
    assert sample(metrics, "lockservice_store_leases") == 2
    assert sample(metrics, "lockservice_store_size_bytes") == 8192
    assert b"lockservice_store_waiters 4.0" in generate_latest(metrics.registry)


def test_a_store_without_reports_adds_nothing() -> None:
    metrics = RpcMetrics()
    metrics.watch_store(Capabilities())
    assert sample(metrics, "lockservice_store_commits_total") is None


def test_no_created_series() -> None:
    """prometheus_client would add a `*_created` family per counter and histogram: timestamps no
    dashboard reads, which double the families a scrape carries."""
    metrics = RpcMetrics()
    metrics.observe_call("GetResource", resource_pb2.GetResourceRequest(key="k"), "OK", "", 0.001)
    metrics.observe_commit(1, 0.001)
    names = {family.name for family in metrics.registry.collect()}
    assert "lockservice_rpc_calls" in names
    assert not [name for name in names if name.endswith("_created")]
    assert b"_created" not in generate_latest(metrics.registry)


class FlakyStore:
    """A store that reports its reachability (as PostgreSQL does)."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[bool], None]] = []

    def watch_availability(self, listener: Callable[[bool], None]) -> None:
        self.listeners.append(listener)


def test_store_availability_follows_the_store() -> None:
    metrics = RpcMetrics()
    store = FlakyStore()
    metrics.watch_store(Capabilities(watch_availability=store.watch_availability))
    assert sample(metrics, "lockservice_store_available") == 1
    (listener,) = store.listeners
    listener(False)
    assert sample(metrics, "lockservice_store_available") == 0
    listener(True)
    assert sample(metrics, "lockservice_store_available") == 1


def test_a_store_that_cannot_be_unreachable_is_available() -> None:
    metrics = RpcMetrics()
    metrics.watch_store(Capabilities())
    assert sample(metrics, "lockservice_store_available") == 1


class CoreCounts:
    """What the watch hub and the expiry task count, as the server's objects expose it."""

    active = 3
    longest_backlog = 17
    cut_off = 2
    expired_leases = 5


def test_watcher_lag_and_lease_expiries_are_sampled_at_scrape() -> None:
    metrics = RpcMetrics()
    counts = CoreCounts()
    metrics.watch_core(counts, counts)
    assert sample(metrics, "lockservice_watchers") == 3
    assert sample(metrics, "lockservice_watch_backlog_max") == 17
    assert sample(metrics, "lockservice_watchers_cut_off_total") == 2
    assert sample(metrics, "lockservice_lease_expiries_total") == 5
    counts.expired_leases = 6
    assert sample(metrics, "lockservice_lease_expiries_total") == 6
