"""Corrupt request messages answered as the client's mistake (INVALID_ARGUMENT), not UNKNOWN.

gRPC parses a request before any handler runs and answers a parse failure with UNKNOWN and the
Python exception text. So the services are registered with a tolerant parser instead: bytes that
do not parse become a `CorruptMessage`, which the call wrapper (`rpc.calls`) refuses with
INVALID_ARGUMENT and our usual details, logged like any other call. Costs one function frame
per parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc

from lockservice.errors import InvalidArgument

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


class _Registrar:
    """Stands for the server while a generated `add_*Servicer_to_server` registers its handlers,
    and registers them with tolerant parsers."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignored: `add_registered_method_handlers` receives the same handlers."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        tolerant = {
            name: handler._replace(request_deserializer=_tolerant(handler.request_deserializer))
            for name, handler in handlers.items()
        }
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, tolerant),))
        self._server.add_registered_method_handlers(service, tolerant)


def add_servicer(add: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server) -> None:
    """`add(servicer, server)` (a generated `add_*Servicer_to_server`), with tolerant parsing."""
    add(servicer, _Registrar(server))
