"""Lock hand-over latency: one hot lock, N queued waiters, each acquire followed by a release.

Measures, for every hand-over, the time from the holder sending ReleaseLock to the next waiter's
AcquireLock answer arriving, against a real `lockservice serve` on a fresh database, and prints
one JSON line (median, p90, p99, max in ms, hand-overs per second).

    .venv/bin/python bench/lock_handoff.py --waiters 16 --handoffs 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import lock_pb2, lock_pb2_grpc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _run(target: str, waiters: int, handoffs: int) -> dict[str, float | str]:
    released_at: list[float] = []
    latencies: list[float] = []
    remaining = handoffs
    stop = asyncio.Event()

    async def worker(index: int) -> None:
        nonlocal remaining
        async with grpc.aio.insecure_channel(target) as channel:
            stub = lock_pb2_grpc.LockServiceStub(channel)
            request = lock_pb2.AcquireLockRequest(
                name="bench/hot", ttl_seconds=30, holder=f"w{index}", wait_timeout=Duration(seconds=60)
            )
            while not stop.is_set():
                lock = await stub.AcquireLock(request, timeout=90)
                acquired = time.perf_counter()
                if released_at:
                    latencies.append(acquired - released_at[-1])
                remaining -= 1
                if remaining <= 0:
                    stop.set()
                released_at.append(time.perf_counter())
                await stub.ReleaseLock(
                    lock_pb2.ReleaseLockRequest(name="bench/hot", token=lock.token), timeout=30
                )

    started = time.perf_counter()
    tasks = [asyncio.create_task(worker(i)) for i in range(waiters)]
    await stop.wait()
    elapsed = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ms = [v * 1000 for v in latencies]
    return {
        "workload": "lock-handoff",
        "waiters": waiters,
        "handoffs": len(latencies),
        "handoffs_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ms), 3),
        "p90_ms": round(_percentile(ms, 0.90), 3),
        "p99_ms": round(_percentile(ms, 0.99), 3),
        "max_ms": round(max(ms), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiters", type=int, default=16)
    parser.add_argument("--handoffs", type=int, default=2000)
    args = parser.parse_args()
    lockservice = str(Path(sys.executable).parent / "lockservice")
    with tempfile.TemporaryDirectory() as workdir:
        address = f"127.0.0.1:{_free_port()}"
        env = {**os.environ, "LOCKSERVICE_LOG_LEVEL": "warning"}
        server = subprocess.Popen(
            [lockservice, "serve", "--listen", address, "--db", f"{workdir}/bench.db"], env=env
        )
        try:
            with grpc.insecure_channel(address) as channel:
                grpc.channel_ready_future(channel).result(timeout=20)
            print(json.dumps(asyncio.run(_run(address, args.waiters, args.handoffs))))
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
