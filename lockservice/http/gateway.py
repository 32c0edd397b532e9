"""The standalone HTTP gateway: the adapter in front of a (possibly remote) lockservice.

    python -m lockservice.http --target 10.0.0.5:50051 --listen 0.0.0.0:8080
    python -m lockservice.http --target lockservice:50051 --target-ca ca.crt \
        --listen 0.0.0.0:8443 --tls-cert gateway.crt --tls-key gateway.key

Every flag has a variable twin; a flag beats its variable, which beats the default.
SIGTERM or SIGINT stops it gracefully (exit 0); a bad flag exits 2 (one line per problem), a
port it cannot bind or a TLS file it cannot load 1. Every request is logged (one line, no body)
and measured; `/metrics` on its port serves the measures (`lockservice.http.access`).

The gateway dials the server with its own credentials (`--target-cert`), never its callers'
certificates: a remote server cannot tell a gateway's word about who a caller is from anyone
else's. So with a client certificate of its own, it answers 401 to a request without
`Authorization` rather than let the caller act under the gateway's identity.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import Sequence

import grpc
import structlog

from lockservice.http.access import AccessLog
from lockservice.http.app import create_app
from lockservice.http.options import HttpOptions
from lockservice.http.problems import ProblemOptions
from lockservice.http.serve import HttpLimits, HttpTls, parse_listen, run_http
from lockservice.logs import LOG_LEVELS, configure_logging
from lockservice.settings import readable_file

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
        help="answer 412 (RFC 9110) instead of 409 to a failed If-Match / If-Unmodified-Since / "
        "If-None-Match "
        "[LOCKSERVICE_HTTP_STRICT_PRECONDITIONS]",
    )
    parser.add_argument(
        "--http-require-preconditions",
        action="store_true",
        default=_env_flag("LOCKSERVICE_HTTP_REQUIRE_PRECONDITIONS"),
        help="answer 428 to a PUT or DELETE without If-Match / If-None-Match / If-Unmodified-Since "
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


def _timeout(text: str) -> float:
    value = _seconds(text)
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} is outside 0.1..3600 seconds")
    return value


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """The bounds on HTTP connections (`HttpLimits`), with `lockservice serve`'s flag names."""
    defaults = HttpLimits()
    parser.add_argument(
        "--http-max-connections",
        type=_positive_int,
        metavar="N",
        default=os.environ.get("LOCKSERVICE_HTTP_MAX_CONNECTIONS", str(defaults.max_connections)),
        help="open connections; more are closed at once [LOCKSERVICE_HTTP_MAX_CONNECTIONS] "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--http-header-timeout",
        type=_timeout,
        metavar="SECONDS",
        default=os.environ.get("LOCKSERVICE_HTTP_HEADER_TIMEOUT", f"{defaults.header_timeout_seconds:g}"),
        help="seconds a connection has to send a request's headers [LOCKSERVICE_HTTP_HEADER_TIMEOUT] "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--http-keepalive-timeout",
        type=_timeout,
        metavar="SECONDS",
        default=os.environ.get(
            "LOCKSERVICE_HTTP_KEEPALIVE_TIMEOUT", f"{defaults.keepalive_timeout_seconds:g}"
        ),
        help="seconds an idle kept-alive connection stays open [LOCKSERVICE_HTTP_KEEPALIVE_TIMEOUT] "
        "(default %(default)s)",
    )


def _add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """HTTPS on --listen, and TLS to --target."""

    def path(flag: str, variable: str, help_text: str) -> None:
        parser.add_argument(
            flag, metavar="PATH", default=os.environ.get(variable, ""), help=f"{help_text} [{variable}]"
        )

    path("--tls-cert", "LOCKSERVICE_HTTP_TLS_CERT", "PEM certificate chain: serve HTTPS")
    path("--tls-key", "LOCKSERVICE_HTTP_TLS_KEY", "PEM private key of --tls-cert")
    path("--tls-client-ca", "LOCKSERVICE_HTTP_TLS_CLIENT_CA", "PEM CA bundle: require client certificates")
    parser.add_argument(
        "--target-tls",
        action="store_true",
        default=_env_flag("LOCKSERVICE_TARGET_TLS"),
        help="dial --target over TLS, trusting the system's roots [LOCKSERVICE_TARGET_TLS]",
    )
    path("--target-ca", "LOCKSERVICE_TARGET_CA", "PEM CA that signed the server: dial --target over TLS")
    path("--target-cert", "LOCKSERVICE_TARGET_CERT", "PEM client certificate for --target (mutual TLS)")
    path("--target-key", "LOCKSERVICE_TARGET_KEY", "PEM private key of --target-cert")
    parser.add_argument(
        "--target-server-name",
        metavar="NAME",
        default=os.environ.get("LOCKSERVICE_TARGET_SERVER_NAME", ""),
        help="name to expect in the server's certificate [LOCKSERVICE_TARGET_SERVER_NAME]",
    )


def _dials_tls(args: argparse.Namespace) -> bool:
    return bool(args.target_tls or args.target_ca or args.target_cert)


def _tls_problems(args: argparse.Namespace) -> list[str]:
    """Every problem with the TLS flags, one line each."""
    problems: list[str] = []
    for cert, key, cert_value, key_value in (
        ("--tls-cert", "--tls-key", args.tls_cert, args.tls_key),
        ("--target-cert", "--target-key", args.target_cert, args.target_key),
    ):
        if bool(cert_value) != bool(key_value):
            problems.append(f"{cert} and {key}: give both or neither")
    if args.tls_client_ca and not args.tls_cert:
        problems.append("--tls-client-ca: client certificates need HTTPS; give --tls-cert and --tls-key")
    if args.target_server_name and not _dials_tls(args):
        problems.append("--target-server-name: needs TLS to the target; give --target-ca or --target-tls")
    for flag in (
        "--tls-cert",
        "--tls-key",
        "--tls-client-ca",
        "--target-ca",
        "--target-cert",
        "--target-key",
    ):
        value = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if value:
            problems += readable_file(flag, value)
    return problems


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as file:
        return file.read()


def _channel(args: argparse.Namespace) -> grpc.aio.Channel:
    """The channel to --target: plaintext, or TLS with the gateway's own client certificate."""
    if not _dials_tls(args):
        return grpc.aio.insecure_channel(args.target)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(args.target_ca),
        private_key=_read(args.target_key),
        certificate_chain=_read(args.target_cert),
    )
    options = [("grpc.ssl_target_name_override", args.target_server_name)] if args.target_server_name else []
    return grpc.aio.secure_channel(args.target, credentials, options=options)


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
    _add_tls_arguments(parser)
    _add_connection_arguments(parser)
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
    # Its own certificate would answer for every caller without a token: require theirs.
    options = dataclasses.replace(http_options(args), require_authorization=bool(args.target_cert))
    channel = _channel(args)
    tls = HttpTls(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    try:
        server = await run_http(
            AccessLog(create_app(channel=channel, options=options)),
            args.listen,
            grace=args.grace_period,
            tls=tls,
            limits=HttpLimits(
                max_connections=args.http_max_connections,
                header_timeout_seconds=args.http_header_timeout,
                keepalive_timeout_seconds=args.http_keepalive_timeout,
            ),
        )
    except OSError as error:
        _log.error("http.bind_failed", listen=args.listen, error=str(error))
        await channel.close()
        return 1
    _log.info(
        "http.listening",
        address=server.address,
        target=args.target,
        https="mutual" if args.tls_client_ca else bool(tls),
        target_tls=_dials_tls(args),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    _log.info("http.stopping")
    await server.stop()
    await channel.close()
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
    problems = _tls_problems(args)
    for problem in problems:
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
    if problems:
        return 2
    configure_logging(args.log_level, args.log_format)
    return asyncio.run(_serve(args))
