"""The HTTP adapter: an ASGI app (Starlette) in front of lockservice's gRPC API, and THE
translator of gRPC errors into RFC 9457 problem+json (409 Conflict with the current state).

    from lockservice.http import create_app
    app.mount("/lockservice", create_app(target="127.0.0.1:50051"))

    # a service of your own that calls lockservice over gRPC (stubs or the Python client)
    # gets the same 409s:
    app.add_exception_handler(grpc.RpcError, rpc_error_handler())
    app.add_exception_handler(lockservice_client.LockserviceError, rpc_error_handler())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lockservice.http.app import create_app
    from lockservice.http.dates import DateHeader
    from lockservice.http.failures import Failure, RequestRejected, failure_from_rpc_error
    from lockservice.http.gateway import add_http_arguments, http_options, main_gateway
    from lockservice.http.options import HttpOptions
    from lockservice.http.problems import (
        HTTP_STATUS_BY_CODE,
        Problem,
        ProblemOptions,
        problem_for,
        problem_response,
        rpc_error_handler,
    )
    from lockservice.http.serve import HttpLimits, HttpServer, HttpTls, local_target, run_http

__all__ = [
    "HTTP_STATUS_BY_CODE",
    "DateHeader",
    "Failure",
    "HttpLimits",
    "HttpOptions",
    "HttpServer",
    "HttpTls",
    "Problem",
    "ProblemOptions",
    "RequestRejected",
    "add_http_arguments",
    "create_app",
    "failure_from_rpc_error",
    "http_options",
    "local_target",
    "main_gateway",
    "problem_for",
    "problem_response",
    "rpc_error_handler",
    "run_http",
]

# Where each public name lives. Imported on first use, so that importing one module of this
# package (as the server's assembly does) does not load Starlette, uvicorn and the rest.
_HOMES = {
    "DateHeader": "lockservice.http.dates",
    "Failure": "lockservice.http.failures",
    "HTTP_STATUS_BY_CODE": "lockservice.http.problems",
    "HttpLimits": "lockservice.http.serve",
    "HttpOptions": "lockservice.http.options",
    "HttpServer": "lockservice.http.serve",
    "HttpTls": "lockservice.http.serve",
    "Problem": "lockservice.http.problems",
    "ProblemOptions": "lockservice.http.problems",
    "RequestRejected": "lockservice.http.failures",
    "add_http_arguments": "lockservice.http.gateway",
    "create_app": "lockservice.http.app",
    "failure_from_rpc_error": "lockservice.http.failures",
    "http_options": "lockservice.http.gateway",
    "local_target": "lockservice.http.serve",
    "main_gateway": "lockservice.http.gateway",
    "problem_for": "lockservice.http.problems",
    "problem_response": "lockservice.http.problems",
    "rpc_error_handler": "lockservice.http.problems",
    "run_http": "lockservice.http.serve",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
