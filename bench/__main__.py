"""Runs the benchmark matrix: every workload against a real `lockservice serve`, beside a bare
grpc.aio echo server measured in the same round, with repeats and medians.

    .venv/bin/python -m bench --repeat 3            # SQLite: all workloads; PostgreSQL x1, x3: CAS + lock
    .venv/bin/python -m bench --smoke --backends sqlite   # every workload ~1.5 s, for CI
    .venv/bin/python -m bench --workloads get,put --duration 5 --backends sqlite
    .venv/bin/python -m bench --scale 1000,1000000      # get, put, leases, lease-grant at both sizes
    .venv/bin/python -m bench --backends sqlite --workloads watch-ack --watchers 0,10000 --workers 11
    .venv/bin/python -m bench --issue-table             # issue 20's table: every row, 3 rounds, met/missed

Prints one JSON line per run as it finishes (and to --json), then a table of the runs and one of
the medians (with their JSON lines, "run": "median"); `--scale` adds the medians side by side;
`--issue-table` adds issue 20's rows judged against their targets (`bench.table`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import Backend, postgres_available
from bench.loadgen import Sizes
from bench.matrix import Settings, run_matrix
from bench.report import Record, json_line, markdown_table, medians, table
from bench.scale import Scale, run_scale, side_by_side
from bench.stored import default_cache_dir
from bench.table import run_table, stored_settings
from bench.targets import echo_summary, issue_rows, judge, markdown
from bench.workloads import (
    ETCD_WORKLOADS,
    EXTRA_WORKLOADS,
    ISSUE_WORKLOADS,
    POSTGRES_WORKLOADS,
    SCALE_WORKLOADS,
    WORKLOADS,
)

_SMOKE_SIZES = Sizes(keys=1_000, leases=1_000, watch_rate=20.0)
_TABLE_STORED = (1_000_000, 10_000)  # the issue table's large store: keys, live leases
_TABLE_STORED_SMOKE = (20_000, 1_000)


def _backends(text: str) -> list[Backend]:
    backends = []
    for item in text.split(","):
        store, _, replicas = item.strip().partition(":")
        if store not in ("sqlite", "postgresql"):
            raise argparse.ArgumentTypeError(f"unknown backend {store!r}: sqlite or postgresql[:REPLICAS]")
        if store == "sqlite" and replicas not in ("", "1"):
            raise argparse.ArgumentTypeError("SQLite runs one server per database file")
        backends.append(Backend(store, int(replicas or 1)))
    return backends


def _workloads(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS or name in ("echo", *ETCD_WORKLOADS)]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown workloads {unknown}; choose from {ISSUE_WORKLOADS + EXTRA_WORKLOADS}"
        )
    return names


def _scales(text: str) -> list[Scale]:
    scales = []
    for item in text.split(","):
        keys, _, leases = item.strip().partition(":")
        (count,) = _counts(keys)
        scales.append(Scale(count, _counts(leases)[0] if leases else count))
    return scales


def _counts(text: str) -> list[int]:
    try:
        counts = [int(item.replace("_", "")) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of whole numbers: {text!r}") from None
    if not counts or min(counts) < 0:
        raise argparse.ArgumentTypeError(f"not a comma list of whole numbers: {text!r}")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rounds; medians are taken over them (default 1; --issue-table: 3)",
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="measured seconds per run (default 10; --smoke: 1.5)"
    )
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight per process")
    parser.add_argument(
        "--backends",
        type=_backends,
        default=None,
        help="comma list of sqlite, postgresql[:REPLICAS] (default sqlite,postgresql:1,postgresql:3; "
        "--smoke: sqlite)",
    )
    parser.add_argument(
        "--workloads",
        type=_workloads,
        default=None,
        help=f"comma list of {','.join(ISSUE_WORKLOADS + EXTRA_WORKLOADS)} (default: all but "
        f"{','.join(EXTRA_WORKLOADS)} on SQLite, {','.join(POSTGRES_WORKLOADS)} on PostgreSQL; "
        f"--scale: {','.join(SCALE_WORKLOADS)})",
    )
    parser.add_argument(
        "--stored-keys",
        type=int,
        default=None,
        help="100-byte keys stored before each run (e.g. 1000000); --issue-table: in its large store "
        f"(default {_TABLE_STORED[0]:,})",
    )
    parser.add_argument(
        "--stored-leases",
        type=int,
        default=None,
        help="live leases (TTL a day) stored before each run; --issue-table: in its large store "
        f"(default {_TABLE_STORED[1]:,})",
    )
    parser.add_argument(
        "--scale",
        type=_scales,
        default=None,
        help="comma list of sizes, N or KEYS:LEASES (e.g. 1000,1000000): per size, one server filled "
        "with that many keys and leases runs the workloads; prints them side by side (default "
        "backend: sqlite)",
    )
    parser.add_argument(
        "--watchers",
        type=_counts,
        default=None,
        help="comma list of watcher counts: watch-fanout and watch-ack run once per count (default 100)",
    )
    parser.add_argument("--request-ids", action="store_true", help="send a request_id on every write")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy every server during each window into this folder"
    )
    parser.add_argument(
        "--issue-table",
        action="store_true",
        help="issue 20's table: each row's workload on SQLite after its own echo run, naive clients "
        "against a local etcd too, put and RSS on a cached store of --stored-keys and --stored-leases; "
        "prints each row's median against its target",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"where --issue-table keeps its filled large store (default {default_cache_dir()})",
    )
    parser.add_argument("--smoke", action="store_true", help="~1.5 s per workload, smaller set-up: for CI")
    parser.add_argument("--json", type=Path, default=None, help="also append every JSON line to this file")
    parser.add_argument("--markdown", action="store_true", help="print the medians as a Markdown table too")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so SIGTERM, too, stops the servers and drops the database


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.scale and (args.stored_keys or args.stored_leases):
        parser.error("--scale sets the stored keys and leases itself")
    if args.issue_table and (args.scale or args.backends or args.workloads):
        parser.error("--issue-table runs its own workloads on SQLite")
    repeat = args.repeat or (3 if args.issue_table else 1)
    signal.signal(signal.SIGTERM, _interrupt)
    sizes = _SMOKE_SIZES if args.smoke else Sizes()
    if not args.issue_table:
        sizes = dataclasses.replace(
            sizes, stored_keys=args.stored_keys or 0, stored_leases=args.stored_leases or 0
        )
    if args.watchers:
        sizes = dataclasses.replace(sizes, watchers=args.watchers[0])
    duration = args.duration if args.duration is not None else 1.5 if args.smoke else 10.0
    backends = args.backends or (
        [Backend("sqlite")] if args.smoke or args.scale else _backends("sqlite,postgresql:1,postgresql:3")
    )
    if any(b.store == "postgresql" for b in backends) and not postgres_available():
        print("PostgreSQL is not reachable: skipping its runs", file=sys.stderr)
        backends = [b for b in backends if b.store != "postgresql"]
    plan = [
        (backend, args.workloads or (ISSUE_WORKLOADS if backend.store == "sqlite" else POSTGRES_WORKLOADS))
        for backend in backends
    ]
    settings = Settings(
        args.workers,
        args.concurrency,
        duration,
        sizes,
        args.request_ids,
        args.profile,
        tuple(args.watchers or ()),
    )

    def emit(record: Record) -> None:
        line = json_line(record)
        print(line, flush=True)
        if args.json is not None:
            with args.json.open("a") as out:
                out.write(line + "\n")

    if args.issue_table:
        return _issue_table(args, settings, repeat, emit)
    if args.scale:
        records = []
        for backend in backends:
            names = args.workloads or SCALE_WORKLOADS
            records += run_scale(backend, args.scale, names, settings, repeat, emit)
    else:
        records = run_matrix(plan, settings, repeat, emit, echo_per_workload=not args.smoke)
    summary = _summary(records, repeat, emit)
    if args.markdown:
        print()
        print(markdown_table(summary))
    if args.scale:
        for backend in backends:
            print(f"\n{backend.label}, medians side by side:")
            print(side_by_side([r for r in summary if r["backend"] == backend.label], args.scale))
    return _exit_code(records)


def _summary(records: list[Record], repeat: int, emit: Callable[[Record], None]) -> list[Record]:
    """Prints the runs' table and the medians' (emitting their records); returns the medians."""
    print()
    print(table(records))
    summary = medians(records)
    print(f"\nmedians over {repeat} run(s):")
    for record in summary:
        emit(record)
    print(table(summary))
    return summary


def _issue_table(
    args: argparse.Namespace, settings: Settings, repeat: int, emit: Callable[[Record], None]
) -> int:
    keys, leases = _TABLE_STORED_SMOKE if args.smoke else _TABLE_STORED
    keys = keys if args.stored_keys is None else args.stored_keys
    leases = leases if args.stored_leases is None else args.stored_leases
    started = time.monotonic()
    rounds, skipped, records = run_table(
        settings, repeat, stored_settings(settings, keys, leases), args.cache_dir or default_cache_dir(), emit
    )
    _summary(records, repeat, emit)
    print(f"\nissue 20's table, medians of {repeat} round(s), SQLite:")
    print(markdown(judge(issue_rows(settings.sizes.keys, keys, leases), rounds, skipped)))
    print()
    print(echo_summary([r for r in records if r["workload"] == "echo"]))
    print(f"took {time.monotonic() - started:.0f} s")
    return _exit_code(records)


def _exit_code(records: list[Record]) -> int:
    failed = [r for r in records if r["errors"] or str(r.get("check", "ok")).startswith("failed")]
    print(json.dumps({"runs": len(records), "failed_runs": len(failed)}), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
