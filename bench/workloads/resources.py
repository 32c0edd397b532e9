"""Resource workloads: `get`, `put` (10,000 keys, or all the stored keys under `--scale`; 100-byte
values), `cas-hot` (1 key) and `cas-spread` (1,000 keys).

A CAS operation is one successful increment of a decimal counter, done as a client does it:
`AsyncClient.update()` reads the key, CompareAndSets value + 1 expecting the version read, and on
a conflict backs off (jittered, exponential) and retries from the value and version the
conflict carries, with no second read. Every read and CompareAndSet is counted in `calls`.
After the run the parent checks that the counters add up to the number of successful CAS
operations: no lost update, no double apply.
"""

from __future__ import annotations

import concurrent.futures
import random

import grpc
from lockservice_client import AsyncClient, ValueConflict, VersionConflict

from bench.loadgen import Sizes, WorkerContext, WorkerResult
from lockservice.v1 import resource_pb2, resource_pb2_grpc

KV_PREFIX = "bench/kv/"
CAS_PREFIX = "bench/cas/"
HOT_KEY = CAS_PREFIX + "hot"
_TRANSACT_BATCH = 128  # the server's limit of operations per Transact


def kv_key(index: int) -> str:
    return f"{KV_PREFIX}{index:08d}"


def cas_key(index: int) -> str:
    return f"{CAS_PREFIX}{index:04d}"


def value_of(size: int, tag: int) -> bytes:
    return f"{tag:012d}".encode().ljust(size, b"v")[:size]


def put_all(target: str, items: list[tuple[str, bytes]]) -> None:
    """Seeds keys (parent process, before the run) with Transact batches."""
    with grpc.insecure_channel(target) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        for start in range(0, len(items), _TRANSACT_BATCH):
            operations = [
                resource_pb2.Operation(put=resource_pb2.PutOperation(key=key, value=value))
                for key, value in items[start : start + _TRANSACT_BATCH]
            ]
            stub.Transact(resource_pb2.TransactRequest(operations=operations), timeout=60)


def store_filler(target: str, count: int, value_bytes: int = 100) -> None:
    """Stores the keys `kv_key(0)` .. `kv_key(count - 1)` with `value_bytes`-byte values (4
    Transact streams at a time), so a run can measure with a large store; `get` and `put` address
    the first `Sizes.keys` of them (all of them under `--scale`)."""
    chunk = 64 * _TRANSACT_BATCH
    starts = range(0, count, chunk)

    def fill(start: int) -> None:
        put_all(
            target, [(kv_key(i), value_of(value_bytes, i)) for i in range(start, min(count, start + chunk))]
        )

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(fill, starts))


def read_prefix(target: str, prefix: str) -> dict[str, bytes]:
    """Every key under `prefix` with its value."""
    values: dict[str, bytes] = {}
    with grpc.insecure_channel(target) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        token = ""
        for _ in range(100_000):
            page = stub.ListResources(
                resource_pb2.ListResourcesRequest(
                    prefix=prefix, page_size=1000, page_token=token, view=resource_pb2.RESOURCE_VIEW_FULL
                ),
                timeout=60,
            )
            values.update((resource.key, resource.value) for resource in page.resources)
            token = page.next_page_token
            if not token:
                break
    return values


def seed_kv(targets: list[str], sizes: Sizes) -> None:
    """The `keys` keys of `get` and `put`, less those the filler already stored."""
    put_all(
        targets[0],
        [(kv_key(i), value_of(sizes.value_bytes, i)) for i in range(sizes.stored_keys, sizes.keys)],
    )


async def get_worker(ctx: WorkerContext) -> None:
    keys = ctx.sizes.keys

    async def get(slot: int, rng: random.Random) -> bool:
        stub = resource_pb2_grpc.ResourceServiceStub(ctx.channel(slot))
        await stub.GetResource(resource_pb2.GetResourceRequest(key=kv_key(rng.randrange(keys))), timeout=30)
        return True

    await ctx.start()
    await ctx.repeat(get)
    await ctx.stop()


async def put_worker(ctx: WorkerContext) -> None:
    keys, size = ctx.sizes.keys, ctx.sizes.value_bytes

    async def put(slot: int, rng: random.Random) -> bool:
        stub = resource_pb2_grpc.ResourceServiceStub(ctx.channel(slot))
        request = resource_pb2.UpdateResourceRequest(
            key=kv_key(rng.randrange(keys)),
            value=value_of(size, rng.randrange(1 << 40)),
            allow_missing=True,
            request_id=ctx.request_id(),
        )
        await stub.UpdateResource(request, timeout=30)
        return True

    await ctx.start()
    await ctx.repeat(put)
    await ctx.stop()


async def _cas_worker(ctx: WorkerContext, key_count: int) -> None:
    """Increments random counters among `key_count` keys (1: the hot key) with the Python
    client's `update()` as shipped: read once, CompareAndSet, and on a conflict retry from the
    value the conflict carries after the default backoff (10 ms doubling, full jitter, 10
    attempts; one that loses them all starts over and counts in `gave_up`)."""
    clients = [AsyncClient(channel=channel) for channel in ctx.channels]

    def pick(rng: random.Random) -> str:
        return HOT_KEY if key_count == 1 else cas_key(rng.randrange(key_count))

    def increment(value: bytes | None) -> bytes:
        ctx.count("calls")  # one CompareAndSet per application
        return str(int(value or b"0") + 1).encode()

    async def operation(slot: int, rng: random.Random) -> bool:
        client = clients[(ctx.index * ctx.concurrency + slot) % len(clients)]
        key = pick(rng)
        while True:
            ctx.count("calls")  # update() reads once; its retries need no read
            try:
                await client.update(key, increment, timeout=30)  # the client's default backoff
                return True
            except (VersionConflict, ValueConflict):
                ctx.count("gave_up")  # all attempts lost: start over, unless the window closed
                if not ctx.running():
                    return False

    await ctx.start()
    await ctx.repeat(operation)
    await ctx.stop()


async def cas_hot_worker(ctx: WorkerContext) -> None:
    await _cas_worker(ctx, 1)


async def cas_spread_worker(ctx: WorkerContext) -> None:
    await _cas_worker(ctx, ctx.sizes.cas_keys)


def seed_cas_hot(targets: list[str], sizes: Sizes) -> None:
    put_all(targets[0], [(HOT_KEY, b"0")])


def seed_cas_spread(targets: list[str], sizes: Sizes) -> None:
    put_all(targets[0], [(cas_key(i), b"0") for i in range(sizes.cas_keys)])


def check_counters(targets: list[str], sizes: Sizes, results: list[WorkerResult]) -> dict[str, object]:
    """The counters must add up to the successful CAS operations, read back from every server."""
    successes = sum(result.ops for result in results)
    totals = [sum(int(value) for value in read_prefix(target, CAS_PREFIX).values()) for target in targets]
    ok = all(total == successes for total in totals)
    return {"check": "ok" if ok else f"failed: counters sum to {totals}, successful CAS {successes}"}
