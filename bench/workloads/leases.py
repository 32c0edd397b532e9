"""`leases`: 10,000 leases kept alive over KeepAlive streams; `lease-grant`: GrantLease calls.

Set-up grants the leases (split over the workers, not measured). In the window each task keeps
one KeepAlive stream and refreshes its slice of the leases round-robin, one request in flight
per stream; ops = refreshes, latency = request sent -> answer. A lease that ended (NOT_FOUND)
is an error; `unrefreshed` counts leases the window was too short to reach.

`lease-grant` grants one lease per operation, for a day (as the filler's: none of them expires
during a run, so the expiry task does not bill later runs), adding to the live leases.
"""

from __future__ import annotations

import asyncio
import random
import time

import grpc

from bench.fill import FILL_LEASE_TTL
from bench.loadgen import WorkerContext
from lockservice.v1 import lease_pb2, lease_pb2_grpc


async def _grant(ctx: WorkerContext, count: int) -> list[str]:
    leases: list[str] = []

    async def grant(slot: int) -> None:
        stub = lease_pb2_grpc.LeaseServiceStub(ctx.channel(slot))
        for _ in range(slot, count, ctx.concurrency):
            request = lease_pb2.GrantLeaseRequest(
                ttl_seconds=ctx.sizes.lease_ttl, holder=f"bench-{ctx.index}"
            )
            leases.append((await stub.GrantLease(request, timeout=60)).lease_id)

    await asyncio.gather(*(grant(slot) for slot in range(ctx.concurrency)))
    return leases


async def leases_worker(ctx: WorkerContext) -> None:
    leases = await _grant(ctx, len(ctx.share(ctx.sizes.leases)))
    refreshed = [0] * len(leases)

    async def keep_alive(slot: int) -> None:
        mine = range(slot, len(leases), ctx.concurrency)
        if not mine:
            return
        stub = lease_pb2_grpc.LeaseServiceStub(ctx.channel(slot))
        call = stub.KeepAlive()
        turn = 0
        try:
            while ctx.running():
                index = mine[turn % len(mine)]
                turn += 1
                started = time.monotonic()
                await call.write(lease_pb2.KeepAliveRequest(lease_id=leases[index]))
                response = await call.read()
                if response is grpc.aio.EOF:
                    raise RuntimeError("KeepAlive stream ended early")
                ctx.done(started)
                refreshed[index] += 1
            await call.done_writing()
        except (grpc.aio.AioRpcError, RuntimeError) as error:
            ctx.fail(error)
        finally:
            call.cancel()

    await ctx.start()
    await asyncio.gather(*(keep_alive(slot) for slot in range(ctx.concurrency)))
    await ctx.stop()
    ctx.count("unrefreshed", refreshed.count(0))


async def lease_grant_worker(ctx: WorkerContext) -> None:
    async def grant(slot: int, rng: random.Random) -> bool:
        stub = lease_pb2_grpc.LeaseServiceStub(ctx.channel(slot))
        request = lease_pb2.GrantLeaseRequest(
            ttl_seconds=FILL_LEASE_TTL, holder=f"bench-{ctx.index}-{slot}", request_id=ctx.request_id()
        )
        await stub.GrantLease(request, timeout=30)
        return True

    await ctx.start()
    await ctx.repeat(grant)
    await ctx.stop()
