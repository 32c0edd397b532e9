"""The standalone HTTP gateway: the adapter in front of a (possibly remote) lockservice.

    python -m lockservice.http --target 10.0.0.5:50051 --listen 0.0.0.0:8080

Every flag has a variable twin; a flag beats its variable, which beats the default.
SIGTERM or SIGINT stops it gracefully (exit 0); a bad flag exits 2, a port it cannot bind 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence

import structlog

from lockservice.http.app import create_app
from lockservice.http.options import HttpOptions
from lockservice.http.problems import ProblemOptions
from lockservice.http.serve import parse_listen, run_http
from lockservice.logs import LOG_LEVELS, configure_logging

__all__ = ["add_http_arguments", "build_gateway_parser", "http_options", "main_gateway"]

_log = structlog.get_logger("lockservice.http")
_LOG_FORMATS = ("auto", "json", "console")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds")
    return value


def _listen(text: str) -> str:
    try:
        parse_listen(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_http_arguments(parser: argparse.ArgumentParser) -> None:
    """The adapter's behaviour flags, shared by `lockservice serve` and the gateway."""
    parser.add_argument(
        "--http-strict-preconditions",
        action="store_true",
        default=_env_flag("LOCKSERVICE_HTTP_STRICT_PRECONDITIONS"),
        help="answer 412 (RFC 9110) instead of 409 to a failed If-Match / If-None-Match "
        "[LOCKSERVICE_HTTP_STRICT_PRECONDITIONS]",
    )
    parser.add_argument(
        "--http-require-preconditions",
        action="store_true",
        default=_env_flag("LOCKSERVICE_HTTP_REQUIRE_PRECONDITIONS"),
        help="answer 428 to a PUT or DELETE without If-Match / If-None-Match "
        "[LOCKSERVICE_HTTP_REQUIRE_PRECONDITIONS]",
    )
    parser.add_argument(
        "--http-max-value-bytes",
        type=_positive_int,
        metavar="BYTES",
        # A string default goes through `type` too: a bad variable is a usage error (exit 2).
        default=os.environ.get("LOCKSERVICE_HTTP_MAX_VALUE_BYTES", str(HttpOptions().max_value_bytes)),
        help="largest raw PUT body, 413 beyond [LOCKSERVICE_HTTP_MAX_VALUE_BYTES] (default %(default)s)",
    )


def http_options(args: argparse.Namespace) -> HttpOptions:
    """The `HttpOptions` of flags added by `add_http_arguments`."""
    return HttpOptions(
        problems=ProblemOptions(strict_preconditions=args.http_strict_preconditions),
        require_preconditions=args.http_require_preconditions,
        max_value_bytes=args.http_max_value_bytes,
    )


def build_gateway_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lockservice.http", description="Serve the lockservice HTTP adapter for a gRPC target."
    )
    parser.add_argument(
        "--target",
        metavar="HOST:PORT",
        default=os.environ.get("LOCKSERVICE_TARGET", "127.0.0.1:50051"),
        help="lockservice gRPC address [LOCKSERVICE_TARGET] (default %(default)s)",
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        metavar="HOST:PORT",
        default=os.environ.get("LOCKSERVICE_HTTP_LISTEN", "127.0.0.1:8080"),
        help="HTTP address: HOST:PORT or unix:PATH [LOCKSERVICE_HTTP_LISTEN] (default %(default)s)",
    )
    add_http_arguments(parser)
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default=os.environ.get("LOCKSERVICE_LOG_LEVEL", "info")
    )
    parser.add_argument(
        "--log-format",
        choices=_LOG_FORMATS,
        default=os.environ.get("LOCKSERVICE_LOG_FORMAT", "auto"),
    )
    parser.add_argument(
        "--grace-period",
        type=_seconds,
        metavar="SECONDS",
        default=os.environ.get("LOCKSERVICE_GRACE_PERIOD", "10"),
        help="seconds SIGTERM waits for in-flight requests (default %(default)s)",
    )
    return parser


async def _serve(args: argparse.Namespace) -> int:
    app = create_app(target=args.target, options=http_options(args))
    try:
        server = await run_http(app, args.listen, grace=args.grace_period)
    except OSError as error:
        _log.error("http.bind_failed", listen=args.listen, error=str(error))
        return 1
    _log.info("http.listening", address=server.address, target=args.target)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    _log.info("http.stopping")
    await server.stop()
    return 0


def main_gateway(argv: Sequence[str] | None = None) -> int:
    """Runs the gateway until SIGTERM / SIGINT; returns the exit code."""
    parser = build_gateway_parser()
    try:
        args = parser.parse_args(argv)
        # argparse checks choices of flags, not of defaults taken from the environment.
        if args.log_level not in LOG_LEVELS or args.log_format not in _LOG_FORMATS:
            parser.error(
                f"--log-level / --log-format: {args.log_level!r} / {args.log_format!r} is not a choice"
            )
    except SystemExit as exit_:
        return int(exit_.code or 0)
    configure_logging(args.log_level, args.log_format)
    return asyncio.run(_serve(args))
