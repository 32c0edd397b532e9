"""Calls that must not outlive their HTTP client.

A lock acquisition may queue for a long `wait_timeout`. If the HTTP client goes away meanwhile,
the waiter must leave the queue (cancelling the gRPC call does that), or it would be served a
lock nobody uses, and the queue behind it would wait for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeVar

import grpc
from starlette.requests import Request

from lockservice.http.failures import Failure, RequestRejected

__all__ = ["unless_client_leaves"]

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


async def _client_left(request: Request) -> None:
    # The body was read already, so the next ASGI message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(
    request: Request, call: grpc.aio.UnaryUnaryCall[_Request, _Response]
) -> _Response:
    """The call's answer; the call is cancelled (and the request answered 499) if the client
    disconnects first."""

    async def answer() -> _Response:
        return await call

    result = asyncio.ensure_future(answer())
    gone = asyncio.ensure_future(_client_left(request))
    try:
        await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
    if not result.done():
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
            await result
        raise RequestRejected(Failure(grpc.StatusCode.CANCELLED, "", "the client closed the connection"))
    return result.result()
