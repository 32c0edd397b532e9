"""One measured run (fresh servers, fill, seed, load, check), and the matrix of runs with repeats."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.fill import fill_leases
from bench.harness import Backend, Servers, cpu_seconds
from bench.loadgen import RunSpec, Sizes, merged_counters, run_load, worker_failures
from bench.report import Record, latency_fields, per_op_us
from bench.workloads import ECHO, WORKLOADS, Workload
from bench.workloads.resources import store_filler

_DEFAULT_WATCHERS_PER_CLIENT = 100
_LEASE_HEADROOM = 1_000_000  # the server's default --max-leases, kept free above the stored ones


@dataclass(frozen=True)
class Settings:
    workers: int
    concurrency: int
    duration: float
    sizes: Sizes
    request_ids: bool = False
    profile_dir: Path | None = None
    watcher_counts: tuple[int, ...] = ()  # runs of a `uses_watchers` workload (default: sizes.watchers)


def server_args(sizes: Sizes) -> list[str]:
    """What `lockservice serve` needs beyond its defaults for these sizes: room in one client's
    stream limits for all the watchers (the bench is one client), and the default headroom of
    live leases above the stored ones (so a grant never meets the limit's exact count)."""
    args: list[str] = []
    if sizes.watchers > _DEFAULT_WATCHERS_PER_CLIENT:
        room = str(sizes.watchers + _DEFAULT_WATCHERS_PER_CLIENT)
        args += ["--max-watchers-per-client", room, "--max-streams-per-client", room]
    if sizes.stored_leases:
        args += ["--max-leases", str(sizes.stored_leases + _LEASE_HEADROOM)]
    return args


@contextlib.contextmanager
def filled_servers(backend: Backend, sizes: Sizes) -> Iterator[Servers]:
    """Fresh servers whose store holds `stored_leases` leases (written before they start) and
    `stored_keys` keys (put once they serve); the echo server gets neither."""
    if backend.store == "echo":
        with Servers(backend) as servers:
            yield servers
        return
    leases = sizes.stored_leases

    def fill(location: str) -> None:
        fill_leases(location, leases)

    with Servers(backend, server_args(sizes), fill if leases else None) as servers:
        if sizes.stored_keys:
            store_filler(servers.targets[0], sizes.stored_keys, sizes.value_bytes)
        yield servers


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
    """Starts fresh servers (a new SQLite file or PostgreSQL database), fills, seeds, drives the
    load, checks, stops the servers; returns the run's record (without the echo ratio)."""
    with filled_servers(backend, settings.sizes) as servers:
        return measure_on(servers, workload, settings, run)


def measure_on(servers: Servers, workload: Workload, settings: Settings, run: int) -> Record:
    """Seeds, drives the load and checks on running servers; returns the run's record (without
    the echo ratio), with the largest server's RSS read after the checks."""
    backend = servers.backend
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
        outcome = workload.check(servers.targets, settings.sizes, results) if not failures else {"check": "-"}
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
        "stored_leases": settings.sizes.stored_leases,
    }
    if workload.uses_watchers:
        record["watchers"] = settings.sizes.watchers
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
    calls/s (so 1.0 is "as fast as a no-op Python gRPC call" for this workload), and the server
    CPU per call against echo's (1.0: as cheap as a no-op call)."""
    record["echo_ops_per_s"] = echo["ops_per_s"]
    record["echo_server_cpu_us_per_call"] = echo["server_cpu_us_per_op"]
    if echo["server_cpu_us_per_op"]:
        record["server_cpu_to_echo"] = round(
            record["server_cpu_us_per_op"] / workload.echo_calls_per_op / echo["server_cpu_us_per_op"], 3
        )
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
                for variant in _variants(workload, settings):
                    if echo_per_workload or not echo:
                        echo = measure_echo(backend, variant, run, name if echo_per_workload else "")
                        emit(echo)
                        records.append(echo)
                    record = with_echo_ratio(measure(workload, backend, variant, run), echo, workload)
                    emit(record)
                    records.append(record)
    return records


def measure_echo(backend: Backend, settings: Settings, run: int, paired_with: str) -> Record:
    """An echo run, labelled with the backend (and workload) it is the ceiling for."""
    echo = measure(ECHO, Backend("echo"), settings, run)
    echo.update(backend=backend.label, replicas=backend.replicas)
    if paired_with:
        echo["paired_with"] = paired_with
    return with_echo_ratio(echo, echo, ECHO)


def _variants(workload: Workload, settings: Settings) -> list[Settings]:
    """One settings per run of the workload: one per watcher count for a `uses_watchers` one."""
    if not workload.uses_watchers or not settings.watcher_counts:
        return [settings]
    return [
        dataclasses.replace(settings, sizes=dataclasses.replace(settings.sizes, watchers=count))
        for count in settings.watcher_counts
    ]
