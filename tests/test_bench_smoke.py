"""The benchmark harness keeps working: `python -m bench --smoke` against SQLite runs every
workload (issue 7's and issue 15's lease-grant and watch-ack, the watch ones at each `--watchers`
count) for 0.15 s and each produces a sound result (`--scale`: tests/bench/test_scale_smoke.py).
No timing assertions: figures on a shared CI machine mean nothing; that the harness runs, fills,
counts and checks does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.fill import fill_leases
from bench.workloads import EXTRA_WORKLOADS, ISSUE_WORKLOADS
from lockservice.store.sqlite import SqliteStore
from tests.bench.support import TINY, run_bench

# The harness starts its own servers (the lease filler test opens a store file only).
pytestmark = pytest.mark.e2e

_EVERY = (*ISSUE_WORKLOADS, *EXTRA_WORKLOADS)


@pytest.mark.timeout(300)
def test_smoke_runs_every_workload_without_errors_and_the_watch_workloads_at_each_count(
    tmp_path: Path,
) -> None:
    """One harness run over every workload, issue 15's on-request ones too, at two watcher
    counts: each workload's set-up, load, check and report in one process (each run starts its
    own servers: the runs, not their length, are what costs)."""
    _, records = run_bench(
        tmp_path,
        "--smoke",
        *TINY,
        "--backends",
        "sqlite",
        "--workloads",
        ",".join(_EVERY),
        "--watchers",
        "1,20",
    )
    runs = {(r["workload"], r.get("watchers")): r for r in records if r["run"] == 1}
    watched = {(name, count) for name in ("watch-fanout", "watch-ack") for count in (1, 20)}
    others = {(name, None) for name in ("echo", *_EVERY) if name not in ("watch-fanout", "watch-ack")}
    assert sorted(runs, key=str) == sorted(others | watched, key=str)
    for record in runs.values():
        assert record["ops"] > 0, record
        assert record["errors"] == 0, record
        assert record["ratio_to_echo"] > 0, record
    for name in ("cas-hot", "cas-hot-naive", "cas-spread"):
        assert runs[(name, None)]["check"] == "ok", runs[(name, None)]
    for name, count in watched:
        assert runs[(name, count)]["check"] == "ok", runs[(name, count)]
    for count in (1, 20):
        ack = runs[("watch-ack", count)]
        assert ack.get("deliveries", 0) == ack["ops"] * count, ack
        # One write every 5 s (ACK_RATE): the first at the window's start, the next would fall
        # after its end, so the 0.15 s window holds exactly one and ends on time.
        assert ack["ops"] == 1 and ack["seconds"] < 1.5, ack


def test_fill_leases_stores_live_leases(tmp_path: Path) -> None:
    path = str(tmp_path / "fill.db")
    fill_leases(path, 50)

    async def live_leases() -> int:
        store = await SqliteStore.open(path)
        try:
            return (await store.stats())["leases"]
        finally:
            await store.close()

    assert asyncio.run(live_leases()) == 50
