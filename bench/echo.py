"""The ceiling: a bare grpc.aio server with one no-op unary method, and the workload that drives it.

No protobuf, no interceptors, no logging: bytes in, the same bytes out. Whatever lockservice
costs per call above this is ours; this much is Python gRPC's.

    python -m bench.echo --listen 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal

import grpc

from bench.loadgen import WorkerContext

METHOD = "/bench.Echo/Call"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def serve(address: str) -> None:
    server = grpc.aio.server()
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Call": handler}),))
    server.add_insecure_port(address)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1.0)


async def echo_worker(ctx: WorkerContext) -> None:
    """The echo workload: one empty unary call per operation."""
    calls: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
        channel.unary_unary(METHOD) for channel in ctx.channels
    ]

    async def call(slot: int, rng: random.Random) -> bool:
        await calls[(ctx.index * ctx.concurrency + slot) % len(calls)](b"", timeout=30)
        return True

    await ctx.start()
    await ctx.repeat(call)
    await ctx.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description="bare grpc.aio echo server (one no-op unary method)")
    parser.add_argument("--listen", default="127.0.0.1:50099")
    args = parser.parse_args()
    asyncio.run(serve(args.listen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
