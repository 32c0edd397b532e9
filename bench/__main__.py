"""Runs the benchmark matrix: every workload against a real `lockservice serve`, beside a bare
grpc.aio echo server measured in the same round, with repeats and medians.

    .venv/bin/python -m bench --repeat 3            # SQLite: all workloads; PostgreSQL x1, x3: CAS + lock
    .venv/bin/python -m bench --smoke --backends sqlite   # every workload ~1.5 s, for CI
    .venv/bin/python -m bench --workloads get,put --duration 5 --backends sqlite

Prints one JSON line per run as it finishes (and to --json), then a table of the runs and one of
the medians (with their JSON lines, "run": "median").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path

from bench.harness import Backend, postgres_available
from bench.loadgen import Sizes
from bench.matrix import Settings, run_matrix
from bench.report import Record, json_line, markdown_table, medians, table
from bench.workloads import ISSUE_WORKLOADS, POSTGRES_WORKLOADS, WORKLOADS

_SMOKE_SIZES = Sizes(keys=1_000, leases=1_000, watch_rate=20.0)


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
    unknown = [name for name in names if name not in WORKLOADS or name == "echo"]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown workloads {unknown}; choose from {ISSUE_WORKLOADS}")
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are taken over them")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
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
        help=f"comma list of {','.join(ISSUE_WORKLOADS)} (default: all on SQLite, "
        f"{','.join(POSTGRES_WORKLOADS)} on PostgreSQL)",
    )
    parser.add_argument(
        "--stored-keys", type=int, default=0, help="extra 100-byte keys stored before each run (e.g. 1000000)"
    )
    parser.add_argument("--request-ids", action="store_true", help="send a request_id on every write")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy every server during each window into this folder"
    )
    parser.add_argument("--smoke", action="store_true", help="~1.5 s per workload, smaller set-up: for CI")
    parser.add_argument("--json", type=Path, default=None, help="also append every JSON line to this file")
    parser.add_argument("--markdown", action="store_true", help="print the medians as a Markdown table too")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so SIGTERM, too, stops the servers and drops the database


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    sizes = dataclasses.replace(_SMOKE_SIZES if args.smoke else Sizes(), stored_keys=args.stored_keys)
    duration = 1.5 if args.smoke else args.duration
    backends = args.backends or (
        [Backend("sqlite")] if args.smoke else _backends("sqlite,postgresql:1,postgresql:3")
    )
    if any(b.store == "postgresql" for b in backends) and not postgres_available():
        print("PostgreSQL is not reachable: skipping its runs", file=sys.stderr)
        backends = [b for b in backends if b.store != "postgresql"]
    plan = [
        (backend, args.workloads or (ISSUE_WORKLOADS if backend.store == "sqlite" else POSTGRES_WORKLOADS))
        for backend in backends
    ]
    settings = Settings(args.workers, args.concurrency, duration, sizes, args.request_ids, args.profile)

    def emit(record: Record) -> None:
        line = json_line(record)
        print(line, flush=True)
        if args.json is not None:
            with args.json.open("a") as out:
                out.write(line + "\n")

    records = run_matrix(plan, settings, args.repeat, emit, echo_per_workload=not args.smoke)
    print()
    print(table(records))
    summary = medians(records)
    print(f"\nmedians over {args.repeat} run(s):")
    for record in summary:
        emit(record)
    print(table(summary))
    if args.markdown:
        print()
        print(markdown_table(summary))
    failed = [r for r in records if r["errors"] or str(r.get("check", "ok")).startswith("failed")]
    print(json.dumps({"runs": len(records), "failed_runs": len(failed)}), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
