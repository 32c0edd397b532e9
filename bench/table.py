"""`python -m bench --issue-table`: every row of issue 20's table in one command.

Each round (3 by default) runs, on SQLite, each row's workload right after an echo run of its own
(the ratio compares two measurements of the same minute): get, put, cas-spread, lock,
lock-handoff, cas-hot, cas-hot-naive, then `cas-hot-naive-etcd` against a local etcd right
beside the naive lockservice run (the order of the two alternates by round; both are compared
with the same echo run), then `put` on a copy of a store holding 1,000,000 keys and 10,000 live
leases (`bench.stored`: filled once and cached), whose server RSS is read after the run. Every
run starts fresh servers. `bench.targets` judges the medians against the issue's targets.

Without an `etcd` binary on PATH the naive-clients row says "skipped: etcd not installed".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from bench import etcd
from bench.harness import Backend
from bench.matrix import Settings, measure, measure_echo, measure_on, with_echo_ratio
from bench.report import Record
from bench.stored import template, template_servers
from bench.targets import Round
from bench.workloads import WORKLOADS

__all__ = ["ETCD_RUN", "STORED_RUN", "TABLE_WORKLOADS", "run_table", "stored_settings"]

TABLE_WORKLOADS = ["get", "put", "cas-spread", "lock", "lock-handoff", "cas-hot", "cas-hot-naive"]
ETCD_RUN = "cas-hot-naive@etcd"
STORED_RUN = "put@stored"
SQLITE = Backend("sqlite")


def run_table(
    settings: Settings,
    repeat: int,
    stored: Settings,
    cache_dir: Path,
    emit: Callable[[Record], None],
) -> tuple[list[Round], dict[str, str], list[Record]]:
    """Runs `repeat` rounds; returns the rounds (records by run name), the runs skipped (run ->
    "skipped: why") and every record, echo runs included. `stored` is `settings` with the large
    store's `stored_keys` and `stored_leases`."""
    skipped = {} if etcd.available() else {ETCD_RUN: "skipped: etcd not installed"}
    store = template(cache_dir, stored.sizes)
    rounds: list[Round] = []
    records: list[Record] = []

    def keep(round_: Round, name: str, record: Record) -> None:
        round_[name] = record
        records.append(record)
        emit(record)

    for run in range(1, repeat + 1):
        round_: Round = {}
        for name in TABLE_WORKLOADS:
            echo = measure_echo(SQLITE, settings, run, name)
            keep(round_, f"echo/{name}", echo)
            pair = [name] if name != "cas-hot-naive" or ETCD_RUN in skipped else [name, ETCD_RUN]
            for run_name in pair if run % 2 else reversed(pair):
                if run_name == ETCD_RUN:
                    workload = WORKLOADS["cas-hot-naive-etcd"]
                    record = measure(workload, Backend("etcd"), settings, run)
                else:
                    workload = WORKLOADS[run_name]
                    record = measure(workload, SQLITE, settings, run)
                keep(round_, run_name, with_echo_ratio(record, echo, workload))
        echo = measure_echo(SQLITE, stored, run, STORED_RUN)
        keep(round_, f"echo/{STORED_RUN}", echo)
        with template_servers(store, stored.sizes) as servers:
            record = measure_on(servers, WORKLOADS["put"], stored, run)
        record["scale"] = f"{stored.sizes.stored_keys}:{stored.sizes.stored_leases}"
        keep(round_, STORED_RUN, with_echo_ratio(record, echo, WORKLOADS["put"]))
        rounds.append(round_)
    return rounds, skipped, records


def stored_settings(settings: Settings, keys: int, leases: int) -> Settings:
    """`settings` with `keys` keys and `leases` live leases stored before the run."""
    sizes = dataclasses.replace(settings.sizes, stored_keys=keys, stored_leases=leases)
    return dataclasses.replace(settings, sizes=sizes)
