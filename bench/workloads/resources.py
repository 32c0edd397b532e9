"""Resource workloads: `get`, `put` (10,000 keys, 100-byte values), `cas-hot` (1 key) and
`cas-spread` (1,000 keys).

A CAS operation is one successful increment of a decimal counter: read the key, CompareAndSet
it to value + 1 expecting the version read; on ABORTED read again and retry. The conflict's
ConflictDetail carries the current version but not the value, so each retry costs a read
(counted as `calls`). After the run the parent checks that the counters add up to the number of
successful CAS operations: no lost update, no double apply.
"""

from __future__ import annotations

import concurrent.futures
import random

import grpc

from bench.loadgen import Sizes, WorkerContext, WorkerResult
from lockservice.v1 import resource_pb2, resource_pb2_grpc

KV_PREFIX = "bench/kv/"
CAS_PREFIX = "bench/cas/"
HOT_KEY = CAS_PREFIX + "hot"
_TRANSACT_BATCH = 128  # the server's limit of operations per Transact
_MAX_CAS_ATTEMPTS = 10_000  # per operation; the deadline normally ends a losing streak first


def kv_key(index: int) -> str:
    return f"{KV_PREFIX}{index:05d}"


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


def store_filler(target: str, count: int) -> None:
    """Stores `count` extra keys with 100-byte values (4 Transact streams at a time), so a run
    can measure with a large store."""
    chunk = 64 * _TRANSACT_BATCH
    starts = range(0, count, chunk)

    def fill(start: int) -> None:
        put_all(
            target,
            [(f"bench/fill/{i:08d}", value_of(100, i)) for i in range(start, min(count, start + chunk))],
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
    put_all(targets[0], [(kv_key(i), value_of(sizes.value_bytes, i)) for i in range(sizes.keys)])


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
    """Increments random counters among `key_count` keys (1: the hot key)."""

    def pick(rng: random.Random) -> str:
        return HOT_KEY if key_count == 1 else cas_key(rng.randrange(key_count))

    async def increment(slot: int, rng: random.Random) -> bool:
        stub = resource_pb2_grpc.ResourceServiceStub(ctx.channel(slot))
        key = pick(rng)
        current = await stub.GetResource(resource_pb2.GetResourceRequest(key=key), timeout=30)
        ctx.count("calls")
        for _ in range(_MAX_CAS_ATTEMPTS):
            request = resource_pb2.CompareAndSetRequest(
                key=key,
                expected_version=current.version,
                value=str(int(current.value) + 1).encode(),
                request_id=ctx.request_id(),
            )
            ctx.count("calls")
            try:
                await stub.CompareAndSet(request, timeout=30)
                return True
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.ABORTED:
                    raise
            ctx.count("conflicts")
            if not ctx.running():
                return False
            current = await stub.GetResource(resource_pb2.GetResourceRequest(key=key), timeout=30)
            ctx.count("calls")
        return False

    await ctx.start()
    await ctx.repeat(increment)
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
