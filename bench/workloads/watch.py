"""`watch-fanout`: 1 writer, 100 watchers of one key; delivery latency.

The watchers (split over the workers) are established before the window opens. The writer (in
worker 0) puts the key at `watch_rate` writes/s (or as fast as it can, if slower), each value
the CLOCK_MONOTONIC time the write was sent; a watcher's latency is arrival minus that time, so
it includes the durable commit. After the deadline the writer puts an end marker; each watcher
stops when it sees it. ops = deliveries; every watcher must get every write (else errors).
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import cast

import grpc

from bench.loadgen import Sizes, WorkerContext, WorkerResult
from lockservice.v1 import resource_pb2, resource_pb2_grpc

WATCH_KEY = "bench/watch/key"
_END = b"end"
_GRACE = 10.0  # seconds a watcher waits for the end marker after the deadline


async def _watch(ctx: WorkerContext, slot: int, established: asyncio.Event) -> None:
    stub = resource_pb2_grpc.ResourceServiceStub(ctx.channel(slot))
    call = stub.Watch(resource_pb2.WatchRequest(key=WATCH_KEY))
    try:
        first = await call.read()
        if first is grpc.aio.EOF:
            raise RuntimeError("watch ended before it was established")
        established.set()
        while True:
            remaining = ctx.deadline + _GRACE - time.monotonic()
            response = await asyncio.wait_for(call.read(), timeout=max(remaining, 0.001))
            if response is grpc.aio.EOF:
                raise RuntimeError("watch ended early")
            now = time.monotonic()
            for event in cast(resource_pb2.WatchResponse, response).events:
                if event.resource.value == _END:
                    return
                (sent,) = struct.unpack("<d", event.resource.value)
                ctx.result.ops += 1
                ctx.result.latencies_ms.append((now - sent) * 1000)
    except (grpc.aio.AioRpcError, RuntimeError, TimeoutError) as error:
        ctx.fail(error)
    finally:
        call.cancel()


async def _write(ctx: WorkerContext) -> None:
    stub = resource_pb2_grpc.ResourceServiceStub(ctx.channel(0))
    interval = 1.0 / ctx.sizes.watch_rate
    next_write = time.monotonic()
    while ctx.running():
        await asyncio.sleep(max(0.0, next_write - time.monotonic()))
        next_write += interval
        value = struct.pack("<d", time.monotonic())
        try:
            await stub.UpdateResource(
                resource_pb2.UpdateResourceRequest(key=WATCH_KEY, value=value, allow_missing=True), timeout=30
            )
            ctx.count("writes")
        except grpc.aio.AioRpcError as error:
            ctx.fail(error)
    await stub.UpdateResource(
        resource_pb2.UpdateResourceRequest(key=WATCH_KEY, value=_END, allow_missing=True), timeout=30
    )


async def watch_worker(ctx: WorkerContext) -> None:
    slots = range(len(ctx.share(ctx.sizes.watchers)))
    ready = [asyncio.Event() for _ in slots]
    watchers = [asyncio.create_task(_watch(ctx, slot, ready[slot])) for slot in slots]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), timeout=60)
    await ctx.start()
    writer = [_write(ctx)] if ctx.index == 0 else []
    await asyncio.gather(*watchers, *writer)
    await ctx.stop()


def check_deliveries(targets: list[str], sizes: Sizes, results: list[WorkerResult]) -> dict[str, object]:
    """Every watcher got every write."""
    writes = sum(result.counters.get("writes", 0) for result in results)
    expected = writes * sizes.watchers
    delivered = sum(result.ops for result in results)
    ok = delivered == expected
    return {"writes": writes, "check": "ok" if ok else f"failed: {delivered} of {expected} deliveries"}
