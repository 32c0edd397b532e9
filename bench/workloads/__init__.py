"""The workloads, by name, as issue 7 lists them, plus `echo` (the ceiling).

A workload is a worker function (runs in every load-generator process) plus optional parent-side
hooks: `prepare` seeds data before the workers start, `check` verifies the outcome after they
end, `latencies` recomputes latencies from the workers' events. `echo_calls_per_op` says how many
echo calls one operation is compared with (2 for a read + write cycle or an acquire + release).
A workload with `uses_watchers` runs once for each of `--watchers`' counts. `cas-hot-naive-etcd`
runs only against etcd (`Backend("etcd")`, started by the issue table, `bench.table`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.echo import echo_worker
from bench.loadgen import Sizes, WorkerFunction, WorkerResult
from bench.workloads import leases, locks, naive, resources, watch

Check = Callable[[list[str], Sizes, list[WorkerResult]], dict[str, object]]


@dataclass(frozen=True)
class Workload:
    name: str
    worker: WorkerFunction
    unit: str
    echo_calls_per_op: int = 1
    prepare: Callable[[list[str], Sizes], None] | None = None
    check: Check | None = None
    latencies: Callable[[list[WorkerResult]], list[float]] | None = None
    uses_watchers: bool = False


ECHO = Workload("echo", echo_worker, "calls")

WORKLOADS: dict[str, Workload] = {
    workload.name: workload
    for workload in (
        ECHO,
        Workload("get", resources.get_worker, "calls", prepare=resources.seed_kv),
        Workload("put", resources.put_worker, "calls", prepare=resources.seed_kv),
        Workload(
            "cas-hot",
            resources.cas_hot_worker,
            "successful CAS",
            prepare=resources.seed_cas_hot,
            check=resources.check_counters,
        ),
        Workload(
            "cas-hot-naive",
            naive.lockservice_worker,
            "successful CAS",
            prepare=resources.seed_cas_hot,
            check=resources.check_counters,
        ),
        Workload(
            "cas-hot-naive-etcd",
            naive.etcd_worker,
            "successful CAS",
            prepare=naive.seed_etcd,
            check=naive.check_etcd_counter,
        ),
        Workload(
            "cas-spread",
            resources.cas_spread_worker,
            "successful CAS",
            echo_calls_per_op=2,
            prepare=resources.seed_cas_spread,
            check=resources.check_counters,
        ),
        Workload("lock", locks.lock_worker, "acquire+release pairs", echo_calls_per_op=2),
        Workload(
            "lock-handoff",
            locks.lock_handoff_worker,
            "hand-overs",
            echo_calls_per_op=2,
            latencies=locks.handoff_latencies,
        ),
        Workload(
            "watch-fanout", watch.watch_worker, "deliveries", check=watch.check_deliveries, uses_watchers=True
        ),
        Workload("leases", leases.leases_worker, "refreshes"),
        Workload("lease-grant", leases.lease_grant_worker, "grants"),
        Workload(
            "watch-ack",
            watch.watch_ack_worker,
            "acknowledged writes",
            check=watch.check_ack_deliveries,
            uses_watchers=True,
        ),
    )
}

ETCD_WORKLOADS = ["cas-hot-naive-etcd"]
ISSUE_WORKLOADS = [
    name for name in WORKLOADS if name not in ("echo", "lease-grant", "watch-ack", *ETCD_WORKLOADS)
]
EXTRA_WORKLOADS = ["lease-grant", "watch-ack"]  # issue 15's, on request (`--workloads`, `--scale`)
SCALE_WORKLOADS = ["get", "put", "leases", "lease-grant"]
POSTGRES_WORKLOADS = ["cas-hot", "cas-spread", "lock", "lock-handoff"]

__all__ = [
    "ECHO",
    "ETCD_WORKLOADS",
    "EXTRA_WORKLOADS",
    "ISSUE_WORKLOADS",
    "POSTGRES_WORKLOADS",
    "SCALE_WORKLOADS",
    "WORKLOADS",
    "Check",
    "Workload",
]
