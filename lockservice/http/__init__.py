"""The HTTP adapter: an ASGI app (Starlette) in front of lockservice's gRPC API, and THE
translator of gRPC errors into RFC 9457 problem+json (409 Conflict with the current state).

    from lockservice.http import create_app
    app.mount("/lockservice", create_app(target="127.0.0.1:50051"))

    # a service of your own that calls lockservice over gRPC gets the same 409s:
    app.add_exception_handler(grpc.RpcError, rpc_error_handler())
"""

from lockservice.http.app import create_app
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
