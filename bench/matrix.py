"""One measured run (fresh servers, seed, load, check), and the matrix of runs with repeats."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Backend, Servers, cpu_seconds
from bench.loadgen import RunSpec, Sizes, merged_counters, run_load, worker_failures
from bench.report import Record, latency_fields, per_op_us
from bench.workloads import ECHO, WORKLOADS, Workload
from bench.workloads.resources import store_filler


@dataclass(frozen=True)
class Settings:
    workers: int
    concurrency: int
    duration: float
    sizes: Sizes
    request_ids: bool = False
    profile_dir: Path | None = None


class _Window:
    """What the parent reads at the edges of the measured window: server CPU, the database's
    backend processes' CPU (PostgreSQL), and optionally a py-spy profile of the servers."""

    def __init__(self, servers: Servers, profile: Path | None) -> None:
        self.servers = servers
        self.profile = profile
        self.server_cpu = 0.0
        self.database_cpu = 0.0
        self._database_start: dict[int, float] = {}

    def _database_cpu(self) -> dict[int, float]:
        readings = {}
        for pid in self.servers.database_pids():
            with contextlib.suppress(OSError):
                readings[pid] = cpu_seconds(pid)
        return readings

    def open(self) -> None:
        self._database_start = self._database_cpu()
        self.server_cpu = -self.servers.cpu_seconds()
        if self.profile is not None:
            self.servers.start_profiles(self.profile)

    def close(self) -> None:
        if self.profile is not None:
            self.servers.stop_profiles()
        self.server_cpu += self.servers.cpu_seconds()
        end = self._database_cpu()
        self.database_cpu = sum(end[pid] - start for pid, start in self._database_start.items() if pid in end)


def measure(workload: Workload, backend: Backend, settings: Settings, run: int) -> Record:
    """Starts fresh servers (a new SQLite file or PostgreSQL database), seeds, drives the load,
    checks, stops the servers; returns the run's record (without the echo ratio)."""
    with Servers(backend) as servers:
        if settings.sizes.stored_keys and backend.store != "echo":
            store_filler(servers.targets[0], settings.sizes.stored_keys)
        if workload.prepare is not None:
            workload.prepare(servers.targets, settings.sizes)
        spec = RunSpec(
            workload=workload.name,
            targets=tuple(servers.targets),
            workers=settings.workers,
            concurrency=settings.concurrency,
            duration=settings.duration,
            sizes=settings.sizes,
            request_ids=settings.request_ids,
        )
        profile = None
        if settings.profile_dir is not None:
            settings.profile_dir.mkdir(parents=True, exist_ok=True)
            profile = settings.profile_dir / f"{backend.label.replace(' ', '')}-{workload.name}-{run}"
        window = _Window(servers, profile)
        elapsed, results = run_load(spec, window.open, window.close)
        failures = worker_failures(results)
        outcome: dict[str, object] = {}
        if workload.check is not None:
            outcome = (
                workload.check(servers.targets, settings.sizes, results) if not failures else {"check": "-"}
            )
        rss, peak_rss = servers.memory_mb()
        logs = servers.logs() if failures else ""
    ops = sum(result.ops for result in results)
    latencies = (
        workload.latencies(results)
        if workload.latencies is not None
        else [value for result in results for value in result.latencies_ms]
    )
    counters = merged_counters(results)
    record: Record = {
        "run": run,
        "backend": backend.label,
        "replicas": backend.replicas,
        "workload": workload.name,
        "unit": workload.unit,
        "workers": settings.workers,
        "concurrency": settings.concurrency,
        "ops": ops,
        "seconds": round(elapsed, 3),
        "ops_per_s": round(ops / elapsed, 1) if elapsed else 0.0,
        **latency_fields(latencies),
        "errors": sum(result.errors for result in results) + len(failures),
        "server_cpu_us_per_op": per_op_us(window.server_cpu, ops),
        "client_cpu_us_per_op": per_op_us(sum(result.cpu_seconds for result in results), ops),
        "server_rss_mb": round(rss, 1),
        "server_peak_rss_mb": round(peak_rss, 1),
        "stored_keys": settings.sizes.stored_keys,
    }
    if backend.store == "postgresql":
        record["database_cpu_us_per_op"] = per_op_us(window.database_cpu, ops)
    if "calls" in counters and ops:
        record["calls_per_op"] = round(counters["calls"] / ops, 2)
    record.update({name: value for name, value in counters.items() if name != "calls"})
    record.update(outcome)
    samples = [sample for result in results for sample in result.error_samples]
    if samples:
        record["error_samples"] = samples[:5]
    if failures:
        print("".join(failures), logs[-4000:], sep="\n", file=sys.stderr)
        record["check"] = "failed: a load-generator process failed"
    return record


def with_echo_ratio(record: Record, echo: Record, workload: Workload) -> Record:
    """Adds the ratio to the echo server of the same round: ops/s x echo calls per op / echo
    calls/s (so 1.0 is "as fast as a no-op Python gRPC call" for this workload)."""
    record["echo_ops_per_s"] = echo["ops_per_s"]
    record["echo_server_cpu_us_per_call"] = echo["server_cpu_us_per_op"]
    if echo["ops_per_s"]:
        record["ratio_to_echo"] = round(
            record["ops_per_s"] * workload.echo_calls_per_op / echo["ops_per_s"], 4
        )
    return record


def run_matrix(
    plan: list[tuple[Backend, list[str]]],
    settings: Settings,
    repeat: int,
    emit: Callable[[Record], None],
    *,
    echo_per_workload: bool = True,
) -> list[Record]:
    """For each round, backend and workload: an echo run, then the workload's run right after it
    (the ratio compares two measurements of the same minute on a shared machine). Without
    `echo_per_workload` (smoke runs) one echo run per backend and round serves all its workloads.
    Returns every record."""
    records: list[Record] = []
    for run in range(1, repeat + 1):
        for backend, names in plan:
            echo: Record = {}
            for name in names:
                workload = WORKLOADS[name]
                if echo_per_workload or not echo:
                    echo = measure(ECHO, Backend("echo"), settings, run)
                    echo.update(backend=backend.label, replicas=backend.replicas)
                    if echo_per_workload:
                        echo["paired_with"] = name
                    emit(with_echo_ratio(echo, echo, ECHO))
                    records.append(echo)
                record = with_echo_ratio(measure(workload, backend, settings, run), echo, workload)
                emit(record)
                records.append(record)
    return records
