"""Lock workloads: `lock` (100 names, acquire + release pairs) and `lock-handoff` (1 hot lock,
16 queued waiters).

Each task holds a lease of its own (granted in set-up, as a client keeps one session lease) and
acquires with it, queueing (`wait_timeout`) when the name is held.

Hand-over latency is exact across processes: fencing tokens number the acquisitions of the hot
lock, so hand-over k is the time from the release of token k-1 being sent to the acquisition of
token k arriving, both on CLOCK_MONOTONIC.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time

from google.protobuf.duration_pb2 import Duration

from bench.loadgen import WorkerContext, WorkerResult
from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc

HOT_LOCK = "bench/hot-lock"
_WAIT = Duration(seconds=30)


async def _grant_leases(ctx: WorkerContext, slots: int) -> list[str]:
    async def grant(slot: int) -> str:
        stub = lease_pb2_grpc.LeaseServiceStub(ctx.channel(slot))
        request = lease_pb2.GrantLeaseRequest(ttl_seconds=300, holder=f"bench-{ctx.index}-{slot}")
        lease = await stub.GrantLease(request, timeout=30)
        return lease.lease_id

    return list(await asyncio.gather(*(grant(slot) for slot in range(slots))))


async def lock_worker(ctx: WorkerContext) -> None:
    names = ctx.sizes.lock_names
    leases = await _grant_leases(ctx, ctx.concurrency)

    async def pair(slot: int, rng: random.Random) -> bool:
        stub = lock_pb2_grpc.LockServiceStub(ctx.channel(slot))
        name = f"bench/lock/{rng.randrange(names):03d}"
        acquire = lock_pb2.AcquireLockRequest(
            name=name, lease_id=leases[slot], holder=f"bench-{ctx.index}-{slot}", wait_timeout=_WAIT
        )
        lock = await stub.AcquireLock(acquire, timeout=60)
        await stub.ReleaseLock(
            lock_pb2.ReleaseLockRequest(name=name, token=lock.token, request_id=ctx.request_id()), timeout=30
        )
        return True

    await ctx.start()
    await ctx.repeat(pair)
    await ctx.stop()


async def lock_handoff_worker(ctx: WorkerContext) -> None:
    """`waiters` tasks in all, split over the workers; each acquires the hot lock (queueing),
    records (token, acquired at, release sent at) and releases it at once."""
    waiters = ctx.share(ctx.sizes.waiters)
    leases = await _grant_leases(ctx, len(waiters))

    async def waiter(slot: int) -> None:
        stub = lock_pb2_grpc.LockServiceStub(ctx.channel(slot))
        acquire = lock_pb2.AcquireLockRequest(
            name=HOT_LOCK, lease_id=leases[slot], holder=f"bench-{ctx.index}-{slot}", wait_timeout=_WAIT
        )
        while ctx.running():
            try:
                lock = await stub.AcquireLock(acquire, timeout=60)
                acquired = time.monotonic()
                ctx.result.ops += 1
                released = time.monotonic()
                ctx.result.events.append((lock.token, acquired, released))
                await stub.ReleaseLock(
                    lock_pb2.ReleaseLockRequest(name=HOT_LOCK, token=lock.token), timeout=30
                )
            except Exception as error:
                ctx.fail(error)
                await asyncio.sleep(0.001)

    await ctx.start()
    await asyncio.gather(*(waiter(slot) for slot in range(len(waiters))))
    await ctx.stop()


def handoff_latencies(results: list[WorkerResult]) -> list[float]:
    """Release of token k-1 sent -> acquisition of token k answered, in ms, over all workers."""
    events = sorted(event for result in results for event in result.events)
    return [
        (acquired - previous_release) * 1000
        for (previous_token, _, previous_release), (token, acquired, _) in itertools.pairwise(events)
        if token == previous_token + 1
    ]
