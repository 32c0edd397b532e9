"""`cas-hot-naive`: naive clients on one hot counter, against lockservice and against etcd.

Each of `Sizes.naive_clients` clients (64 by default, split over the load-generator processes)
increments one decimal counter as a client written without any care would: read the key,
compare-and-set value + 1 on the version read, and on a conflict read again and retry at once,
with no backoff and without using what the conflict carries. One operation is one successful
increment; every read and every compare-and-set counts in `calls`, every lost one in
`conflicts`. A client whose compare-and-set lost when the window closed gives up (the operation
is not counted and changed nothing); after the run the counter must equal the successes.

The same loop runs against lockservice (GetResource, CompareAndSet on `expected_version`, ABORTED
on a conflict) and against a local etcd over its own gRPC v3 API (KV.Range, then KV.Txn comparing
the key's `mod_revision` with a Put on success; `succeeded` false on a conflict), so the two
servers are compared with the same clients, protocol stack (grpc.aio) and durability (both fsync
a write before answering). Against lockservice the key is seeded and checked as `cas-hot`'s.
"""

from __future__ import annotations

import random
from typing import Any

import grpc

from bench import etcd
from bench.loadgen import Sizes, WorkerContext, WorkerResult
from bench.workloads.resources import HOT_KEY
from lockservice.v1 import resource_pb2, resource_pb2_grpc

__all__ = ["check_etcd_counter", "etcd_worker", "lockservice_worker", "seed_etcd"]

_ETCD_KEY = HOT_KEY.encode()


def _next(value: bytes) -> bytes:
    return str(int(value or b"0") + 1).encode()


async def lockservice_worker(ctx: WorkerContext) -> None:
    async def increment(slot: int, rng: random.Random) -> bool:
        stub = resource_pb2_grpc.ResourceServiceStub(ctx.channel(slot))
        read = resource_pb2.GetResourceRequest(key=HOT_KEY)
        current = await stub.GetResource(read, timeout=30)
        ctx.count("calls")
        while True:
            request = resource_pb2.CompareAndSetRequest(
                key=HOT_KEY, expected_version=current.version, value=_next(current.value)
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
            current = await stub.GetResource(read, timeout=30)
            ctx.count("calls")

    await ctx.start()
    await ctx.repeat(increment, ctx.share(ctx.sizes.naive_clients))
    await ctx.stop()


async def etcd_worker(ctx: WorkerContext) -> None:
    messages, services = etcd.kv_protos()
    read = messages.RangeRequest(key=_ETCD_KEY)

    def compare_and_put(current: Any) -> Any:
        compare = messages.Compare(
            result=messages.Compare.EQUAL,
            target=messages.Compare.MOD,
            key=_ETCD_KEY,
            mod_revision=current.mod_revision,
        )
        put = messages.RequestOp(request_put=messages.PutRequest(key=_ETCD_KEY, value=_next(current.value)))
        return messages.TxnRequest(compare=[compare], success=[put])

    async def increment(slot: int, rng: random.Random) -> bool:
        kv = services.KVStub(ctx.channel(slot))
        (current,) = (await kv.Range(read, timeout=30)).kvs
        ctx.count("calls")
        while True:
            ctx.count("calls")
            if (await kv.Txn(compare_and_put(current), timeout=30)).succeeded:
                return True
            ctx.count("conflicts")
            if not ctx.running():
                return False
            (current,) = (await kv.Range(read, timeout=30)).kvs
            ctx.count("calls")

    await ctx.start()
    await ctx.repeat(increment, ctx.share(ctx.sizes.naive_clients))
    await ctx.stop()


def seed_etcd(targets: list[str], sizes: Sizes) -> None:
    messages, services = etcd.kv_protos()
    with grpc.insecure_channel(targets[0]) as channel:
        put = messages.RequestOp(request_put=messages.PutRequest(key=_ETCD_KEY, value=b"0"))
        services.KVStub(channel).Txn(messages.TxnRequest(success=[put]), timeout=30)


def check_etcd_counter(targets: list[str], sizes: Sizes, results: list[WorkerResult]) -> dict[str, object]:
    """The counter must equal the successful increments, read back from etcd."""
    messages, services = etcd.kv_protos()
    successes = sum(result.ops for result in results)
    with grpc.insecure_channel(targets[0]) as channel:
        (current,) = services.KVStub(channel).Range(messages.RangeRequest(key=_ETCD_KEY), timeout=30).kvs
    total = int(current.value)
    if total != successes:
        return {"check": f"failed: counter is {total}, successful CAS {successes}"}
    return {"check": "ok"}
