"""The long robustness run, on demand:

    python -m tests.robustness --backend postgres --duration 600 --seed 7

Prints the run's summary (ops, faults, verdict) and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

from tests.conftest import ServerProcess, _drop_databases
from tests.robustness.checker import check
from tests.robustness.clients import Workload
from tests.robustness.history import load, save
from tests.robustness.runner import FINAL, RunConfig, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.robustness", description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of faults and load")
    parser.add_argument("--seed", type=int, default=0, help="0: pick one (printed)")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--replicas", type=int, default=3, help="PostgreSQL: serve processes")
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--locks", type=int, default=2)
    parser.add_argument(
        "--retry", action="store_true", help="retry unanswered writes with the same request_id"
    )
    parser.add_argument("--check", metavar="PATH", help="only check a saved history")
    args = parser.parse_args(argv)
    if args.check:
        report = check(load(args.check), final_process=FINAL)
        print(report.explain())
        return 0 if report.ok else 1
    seed = args.seed or random.SystemRandom().randrange(1, 1_000_000)
    config = RunConfig(
        backend=args.backend,
        seed=seed,
        duration=args.duration,
        workers=args.workers,
        replicas=args.replicas,
        workload=Workload(keys=args.keys, locks=args.locks, retry=args.retry),
    )
    print(f"seed {seed}: {config.command()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lockservice-robustness-") as tmp:
        made: list[ServerProcess] = []

        def make_server(store_url: str) -> ServerProcess:
            workdir = Path(tmp) / f"server-{len(made)}"
            workdir.mkdir()
            made.append(ServerProcess(workdir, args.backend, store_url=store_url))
            return made[-1]

        try:
            result = run(config, make_server)
        finally:
            for server in made:
                if server.process is not None and server.process.poll() is None:
                    server.process.kill()
                    server.process.wait(timeout=10)
            _drop_databases()
    print(result.explain())
    if not result.ok:
        path = f"robustness-history-{seed}.jsonl"
        save(result.history, path)
        print(f"history saved to {path}: python -m tests.robustness --check {path}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
