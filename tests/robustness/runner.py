"""One robustness run: start the servers, run the workers against the nemesis, heal, kill -9 and
restart everything once more, read every resource, and check the whole history."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.conftest import ServerProcess
from tests.robustness.checker import Report, check
from tests.robustness.clients import Surprise, Worker, Workload, create_fenced, read_all
from tests.robustness.history import Op, Recorder
from tests.robustness.nemesis import Fault, Nemesis

__all__ = ["FINAL", "SETUP", "RunConfig", "RunResult", "run"]

SETUP, FINAL = 0, 1000
# Makes a server (not started) for one run: a fresh database, or the given PostgreSQL URL shared.
MakeServer = Callable[[str], ServerProcess]


@dataclass(frozen=True)
class RunConfig:
    backend: str
    seed: int
    duration: float
    workers: int = 6
    replicas: int = 2  # PostgreSQL only: `lockservice serve` processes sharing one database
    workload: Workload = field(default_factory=Workload)
    # Acknowledged ops the history must hold before the workers stop: each entry is a group of
    # "kind status" names (e.g. ("update ok", "cas ok")) and the least they add up to. A seed whose
    # faults leave little calm time gets those ops after the faults, in at most `MORE_SECONDS`.
    at_least: tuple[tuple[tuple[str, ...], int], ...] = ()

    def command(self) -> str:
        retry = " --retry" if self.workload.retry else ""
        return (
            f"python -m tests.robustness --backend {self.backend} --duration {self.duration:g} "
            f"--seed {self.seed} --workers {self.workers} --replicas {self.replicas}{retry}"
        )


@dataclass
class RunResult:
    config: RunConfig
    report: Report
    history: list[Op]
    faults: list[Fault]
    surprises: list[Surprise]
    nemesis_errors: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.surprises and not self.nemesis_errors

    def counts(self) -> Counter[str]:
        return _counts(self.history)

    def explain(self) -> str:
        counts = ", ".join(f"{name}: {n}" for name, n in sorted(self.counts().items()))
        lines = [
            f"robustness run on {self.config.backend}, seed {self.config.seed}, "
            f"{self.seconds:.0f}s; reproduce the schedule with: {self.config.command()}",
            f"ops: {counts}",
            f"faults ({len(self.faults)}): " + "; ".join(fault.describe() for fault in self.faults),
        ]
        lines += [f"unexpected answer: {s}" for s in self.surprises]
        lines += [f"nemesis failed: {error}" for error in self.nemesis_errors]
        lines.append(self.report.explain())
        return "\n".join(lines)


MORE_SECONDS = 60.0


def _counts(history: list[Op]) -> Counter[str]:
    """How many ops of each "kind status" (e.g. "update ok") a history holds."""
    return Counter(f"{op.kind} {op.status}" for op in history)


def _until_enough(recorder: Recorder, at_least: tuple[tuple[tuple[str, ...], int], ...]) -> None:
    """Waits until the history holds `at_least` (see `RunConfig`), or `MORE_SECONDS` passed (the
    test's own count assertions then say what is missing)."""
    deadline = time.monotonic() + MORE_SECONDS
    while time.monotonic() < deadline:
        counts = _counts(recorder.history())
        if all(sum(counts[name] for name in names) >= least for names, least in at_least):
            return
        time.sleep(0.1)


def run(config: RunConfig, make_server: MakeServer) -> RunResult:
    began = time.monotonic()
    first = make_server("")
    servers = [first]
    if config.backend == "postgres":
        servers += [make_server(first.store_url) for _ in range(config.replicas - 1)]
    for server in servers:
        server.launch()
    for server in servers:
        server.wait_ready(60)

    recorder = Recorder()
    create_fenced(first.address, recorder, SETUP, config.workload)
    stop_workers, stop_nemesis = threading.Event(), threading.Event()
    workers = [
        Worker(
            process=i + 1,
            address=servers[i % len(servers)].address,
            recorder=recorder,
            rng=random.Random(config.seed * 1000 + i + 1),
            stop=stop_workers,
            workload=config.workload,
        )
        for i in range(config.workers)
    ]
    nemesis = Nemesis(servers, recorder, random.Random(config.seed), stop_nemesis)
    threads = [worker.thread() for worker in workers]
    nemesis_thread = nemesis.thread()
    for thread in [*threads, nemesis_thread]:
        thread.start()
    time.sleep(config.duration)
    nemesis.tried_every_kind.wait(120)
    stop_nemesis.set()
    nemesis_thread.join(120)
    _until_enough(recorder, config.at_least)
    stop_workers.set()
    for thread in threads:
        thread.join(120)

    # Durability: every acknowledged write must survive one more kill -9 of everything.
    for server in servers:
        server.kill9()
    for server in servers:
        server.start(60)
    read_all(first.address, recorder, FINAL, config.workload)

    history = recorder.history()
    report = check(history, final_process=FINAL)
    surprises = [surprise for worker in workers for surprise in worker.surprises]
    return RunResult(
        config, report, history, nemesis.faults, surprises, nemesis.errors, time.monotonic() - began
    )
