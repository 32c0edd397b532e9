"""An in-process gRPC server that answers lockservice methods as a test scripts them, and records
what each call carried (request, metadata, deadline): for what a real server cannot be made to do
on demand (fail with UNAVAILABLE once, stall past a deadline) or to see the wire itself."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

Answer = Callable[[Any, grpc.ServicerContext], Any]


@dataclass
class RecordedCall:
    method: str
    request: Any
    metadata: dict[str, str]
    time_remaining: float | None


@dataclass
class FakeServer:
    address: str
    calls: list[RecordedCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls.append(
                RecordedCall(
                    method=method,
                    request=request,
                    metadata={key: str(value) for key, value in context.invocation_metadata()},
                    time_remaining=context.time_remaining(),
                )
            )


class _Handler(grpc.GenericRpcHandler):
    """Answers every unary method: with `answers[method]` when scripted, else UNIMPLEMENTED."""

    def __init__(self, fake: FakeServer, answers: dict[str, Answer]) -> None:
        self._fake = fake
        self._answers = answers

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        method: str = handler_call_details.method

        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            self._fake.record(method, request, context)
            scripted = self._answers.get(method)
            if scripted is None:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not scripted")
            reply: bytes = scripted(request, context).SerializeToString()
            return reply

        return grpc.unary_unary_rpc_method_handler(answer)


def serve_fake(
    answers: dict[str, Answer], credentials: grpc.ServerCredentials | None = None
) -> Iterator[FakeServer]:
    """Yields a started fake server on a free loopback port; requests arrive as raw bytes."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    address = "127.0.0.1:0"
    port = (
        server.add_secure_port(address, credentials)
        if credentials is not None
        else server.add_insecure_port(address)
    )
    fake = FakeServer(address=f"127.0.0.1:{port}")
    server.add_generic_rpc_handlers((_Handler(fake, answers),))
    server.start()
    try:
        yield fake
    finally:
        server.stop(grace=None)
