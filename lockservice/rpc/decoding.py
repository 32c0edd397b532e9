"""Corrupt request messages answered as the client's mistake (INVALID_ARGUMENT), not UNKNOWN.

gRPC parses a request before any handler runs and answers a parse failure with UNKNOWN and the
Python exception text. So the services are registered with a tolerant parser instead: bytes that
do not parse become a `CorruptMessage`, which the call wrapper (`rpc.calls`) refuses with
INVALID_ARGUMENT and our usual details, logged like any other call. Costs one function frame
per parse. Servicers that are not ours (health, reflection) do not run in that wrapper: their
handlers are wrapped here to refuse a `CorruptMessage` the same way (`add_servicer(...,
foreign=True)`).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc

from lockservice.errors import InvalidArgument
from lockservice.rpc.status import to_grpc_status

__all__ = ["CorruptMessage", "add_servicer", "corrupt_message_error"]


class CorruptMessage:
    """Stands in for a request whose bytes did not parse as `type_name`."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def corrupt_message_error(message: CorruptMessage) -> InvalidArgument:
    return InvalidArgument(
        f"the request is not a valid {message.type_name} message (corrupt protobuf wire format)",
        metadata={"field": "request", "message": message.type_name},
    )


def _tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    message_class = getattr(parse, "__self__", None)  # parse is the generated Message.FromString
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    type_name: str = descriptor.full_name if descriptor is not None else "request"

    def parse_or_mark(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception:  # any bytes that do not parse are the client's mistake
            return CorruptMessage(type_name)

    return parse_or_mark


async def _refuse(message: CorruptMessage, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort_with_status(to_grpc_status(corrupt_message_error(message)))


def _preserving_kind(behavior: Any, check: Callable[[Any, Any], Any]) -> Any:
    """`behavior(request, context)` after `check(request, context)` (which refuses or returns the
    request to pass on), as the same kind of function (coroutine or async generator): grpc.aio
    tells a streaming handler's kind by its function."""
    if inspect.isasyncgenfunction(behavior):

        async def generator(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async for response in behavior(await check(request, context), context):
                yield response

        return generator

    async def coroutine(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return await behavior(await check(request, context), context)

    return coroutine


async def _check_one(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    if isinstance(request, CorruptMessage):
        await context.abort_with_status(to_grpc_status(corrupt_message_error(request)))
    return request


async def _check_each(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    async def each() -> AsyncIterator[Any]:
        async for request in requests:
            yield await _check_one(request, context)

    return each()


def _refusing(handler: Any) -> Any:
    """`handler` (a grpc RpcMethodHandler of an aio servicer) refusing corrupt requests."""
    for field, check in (
        ("unary_unary", _check_one),
        ("unary_stream", _check_one),
        ("stream_unary", _check_each),
        ("stream_stream", _check_each),
    ):
        behavior = getattr(handler, field)
        if behavior is not None:
            return handler._replace(**{field: _preserving_kind(behavior, check)})
    return handler


class _Registrar:
    """Stands for the server while a generated `add_*Servicer_to_server` registers its handlers,
    and registers them with tolerant parsers (and, for a foreign servicer, refusing handlers)."""

    def __init__(self, server: grpc.aio.Server, foreign: bool) -> None:
        self._server = server
        self._foreign = foreign

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignored: `add_registered_method_handlers` receives the same handlers."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        tolerant = {
            name: (_refusing(handler) if self._foreign else handler)._replace(
                request_deserializer=_tolerant(handler.request_deserializer)
            )
            for name, handler in handlers.items()
        }
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, tolerant),))
        self._server.add_registered_method_handlers(service, tolerant)


def add_servicer(
    add: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server, *, foreign: bool = False
) -> None:
    """`add(servicer, server)` (a generated `add_*Servicer_to_server`), with tolerant parsing.
    `foreign`: the servicer's handlers do not run in our call wrapper (health, reflection)."""
    add(servicer, _Registrar(server, foreign))
