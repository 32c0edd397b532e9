"""The workloads, by name, as issue 7 lists them, plus `echo` (the ceiling).

A workload is a worker function (runs in every load-generator process) plus optional parent-side
hooks: `prepare` seeds data before the workers start, `check` verifies the outcome after they
end, `latencies` recomputes latencies from the workers' events. `echo_calls_per_op` says how many
echo calls one operation is compared with (2 for a read + write cycle or an acquire + release).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.echo import echo_worker
from bench.loadgen import Sizes, WorkerFunction, WorkerResult
from bench.workloads import leases, locks, resources, watch

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
        Workload("watch-fanout", watch.watch_worker, "deliveries", check=watch.check_deliveries),
        Workload("leases", leases.leases_worker, "refreshes"),
    )
}

ISSUE_WORKLOADS = [name for name in WORKLOADS if name != "echo"]
POSTGRES_WORKLOADS = ["cas-hot", "cas-spread", "lock", "lock-handoff"]

__all__ = ["ECHO", "ISSUE_WORKLOADS", "POSTGRES_WORKLOADS", "WORKLOADS", "Check", "Workload"]
