"""`watch-fanout`: 1 writer, 100 watchers of one key; delivery latency. `watch-ack`: how long a
write takes to be acknowledged while `--watchers` watch its key.

The watchers (split over the workers) are established before the window opens. The writer (in
worker 0) puts the key at `watch_rate` writes/s (or as fast as it can, if slower), each value
the CLOCK_MONOTONIC time the write was sent; a watcher's latency is arrival minus that time, so
it includes the durable commit. After the deadline the writer puts an end marker; each watcher
stops when it sees it. ops = deliveries; every watcher must get every write (else errors).

`watch-ack` has the same shape at the scale of issue 15 (10,000 watchers): the writer puts one
write every 5 s (time for the fan-out to end on a loaded 2-core machine, so each write meets an
idle server), one at a time, and its latency is the write's own (sent -> acknowledged), which
must not wait for the fan-out; ops = writes. The writer has worker 0 to itself (a loop busy with
deliveries would delay the answers it times); the other workers hold the watchers (with one
worker, it holds them too). The watchers count their deliveries, which must add up.
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


ACK_KEY = "bench/watch/ack"
ACK_RATE = 0.2  # writes/s: a write's fan-out to 10,000 watchers (~1.3 s of server CPU here) ends first
_ACK_CHANNELS = 10  # a client channel carries about 2,000 streams: the watchers use 10 in all
_ESTABLISH_SECONDS = 600.0
# Opens in flight per worker: gRPC cancels a call the server has not taken up within 30 s, and
# 10,000 opened at once left about 6,500 CANCELLED on the loaded development machine.
_OPENING = 50


async def _ack_watch(
    ctx: WorkerContext, channel: grpc.aio.Channel, opening: asyncio.Semaphore, established: asyncio.Event
) -> None:
    """A watcher of `ACK_KEY` that takes every event until the end marker; counts deliveries."""
    stub = resource_pb2_grpc.ResourceServiceStub(channel)
    call = None
    try:
        async with opening:  # a call starts when it is made: made when an opening is free
            call = stub.Watch(resource_pb2.WatchRequest(key=ACK_KEY))
            first = await call.read()
        if first is grpc.aio.EOF:
            raise RuntimeError("watch ended before it was established")
        established.set()
        while True:
            remaining = ctx.deadline + _GRACE - time.monotonic()
            response = await asyncio.wait_for(call.read(), timeout=max(remaining, 0.001))
            if response is grpc.aio.EOF:
                raise RuntimeError("watch ended early")
            for event in cast(resource_pb2.WatchResponse, response).events:
                if event.resource.value == _END:
                    return
                ctx.count("deliveries")
    except (grpc.aio.AioRpcError, RuntimeError, TimeoutError) as error:
        ctx.fail(error)
    finally:
        established.set()  # a watch refused at its start is an error, not a hang of the set-up
        if call is not None:
            call.cancel()


async def _ack_write(ctx: WorkerContext) -> None:
    """Puts `ACK_KEY` at `ACK_RATE`, one at a time; ops = writes, latency = sent -> acknowledged."""
    stub = resource_pb2_grpc.ResourceServiceStub(ctx.channel(0))
    next_write = time.monotonic()
    while ctx.running():
        now = time.monotonic()
        if now < next_write:
            # Wakes at the window's end if that comes first: a write after it is not measured,
            # and the run ends with its window, not up to 1 / ACK_RATE seconds later.
            await asyncio.sleep(min(next_write, ctx.deadline) - now)
            continue
        next_write += 1.0 / ACK_RATE
        started = time.monotonic()
        request = resource_pb2.UpdateResourceRequest(
            key=ACK_KEY, value=struct.pack("<d", started), allow_missing=True
        )
        try:
            await stub.UpdateResource(request, timeout=30)
            ctx.done(started)
        except grpc.aio.AioRpcError as error:
            ctx.fail(error)
    await stub.UpdateResource(
        resource_pb2.UpdateResourceRequest(key=ACK_KEY, value=_END, allow_missing=True), timeout=30
    )


def _ack_watchers(ctx: WorkerContext) -> range:
    """This worker's watchers: none for worker 0 (the writer) when other workers can hold them."""
    workers, total = ctx.spec.workers, ctx.sizes.watchers
    if workers == 1:
        return range(total)
    if ctx.index == 0:
        return range(0)
    index, others = ctx.index - 1, workers - 1
    return range(index * total // others, (index + 1) * total // others)


async def watch_ack_worker(ctx: WorkerContext) -> None:
    """`watch-ack`: `watchers` Watch streams on one key, spread over `_ACK_CHANNELS` connections
    of their own (split over the workers but the writer's) and established before the window;
    worker 0 writes."""
    mine = _ack_watchers(ctx)
    count = max(1, _ACK_CHANNELS // max(1, ctx.spec.workers - 1)) if mine else 0
    # A local subchannel pool gives each channel its own connection (else equal channels share one).
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(ctx.spec.targets[0], options=options) for _ in range(count)]
    try:
        ready = [asyncio.Event() for _ in mine]
        opening = asyncio.Semaphore(_OPENING)
        watchers = [
            asyncio.create_task(_ack_watch(ctx, channels[slot % count], opening, ready[slot]))
            for slot in range(len(mine))
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), timeout=_ESTABLISH_SECONDS)
        await ctx.start()
        writer = [_ack_write(ctx)] if ctx.index == 0 else []
        await asyncio.gather(*watchers, *writer)
        await ctx.stop()
    finally:
        for channel in channels:
            await channel.close()


def check_ack_deliveries(targets: list[str], sizes: Sizes, results: list[WorkerResult]) -> dict[str, object]:
    """Every watcher got every acknowledged write."""
    writes = sum(result.ops for result in results)
    expected = writes * sizes.watchers
    delivered = sum(result.counters.get("deliveries", 0) for result in results)
    return {"check": "ok" if delivered == expected else f"failed: {delivered} of {expected} deliveries"}
