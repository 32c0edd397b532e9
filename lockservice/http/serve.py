"""Serving the adapter with uvicorn inside an asyncio loop that is already running (beside the
gRPC server in `lockservice serve`, or alone in the gateway command).

The socket is bound here, before uvicorn starts, so a taken port is an `OSError` from
`run_http` rather than uvicorn's `sys.exit` inside a task; uvicorn's signal handlers are not
installed, so the caller's own SIGTERM handling (drain gRPC, then HTTP) stays in charge.

With `HttpTls` it serves HTTPS; with a client CA too, every connection must present a
certificate signed by it (refused at the handshake otherwise), and each request's scope carries
the certificate's identity under `identity.SCOPE_KEY`.

`HttpLimits` bounds what connections may hold: a connection must finish a request's headers
within the header timeout of opening (or of its previous response), however slowly it trickles
bytes; an idle kept-alive connection is closed after the keep-alive timeout; and connections
past the cap are closed as soon as they are accepted, so a flood of them cannot take the file
descriptors the gRPC port shares with the adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import structlog
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from lockservice.http.dates import DateHeader
from lockservice.http.identity import SCOPE_KEY, certificate_identity

__all__ = [
    "HttpLimits",
    "HttpServer",
    "HttpTls",
    "descriptor_headroom",
    "local_target",
    "parse_listen",
    "run_http",
]

_STARTUP_SECONDS = 30.0
# Descriptors kept out of the HTTP cap's reach: gRPC connections, the store's files and sockets.
DESCRIPTOR_RESERVE = 1024
_REFUSAL_LOG_SECONDS = 10.0

_log = structlog.get_logger("lockservice.http")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the embedding program owns the signals


@dataclass(frozen=True)
class HttpTls:
    """HTTPS with the PEM certificate chain `cert` and its `key`; with `client_ca`, every client
    must present a certificate signed by it (mutual TLS), as on lockservice's gRPC port."""

    cert: str
    key: str
    client_ca: str = ""


@dataclass(frozen=True)
class HttpLimits:
    """How long and how many HTTP connections may stay open (see the module docstring)."""

    max_connections: int = 1000
    header_timeout_seconds: float = 10.0
    keepalive_timeout_seconds: float = 5.0


def descriptor_headroom(max_connections: int) -> int:
    """Raises this process's soft file-descriptor limit to its hard limit, and returns the
    HTTP connection cap that still leaves `DESCRIPTOR_RESERVE` descriptors to everything else
    (lower than `max_connections` only when the limit is too low for it; a warning says so)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    room = max(soft - DESCRIPTOR_RESERVE, 1) if soft != resource.RLIM_INFINITY else max_connections
    if room < max_connections:
        _log.warning(
            "http.connection_cap_lowered",
            requested=max_connections,
            cap=room,
            descriptor_limit=soft,
            hint="raise the open-files limit (ulimit -n / LimitNOFILE) or lower --http-max-connections",
        )
        return room
    return max_connections


class _BoundedProtocol(H11Protocol):
    """HTTP/1.1 with the header timeout and connection cap of `limits` (set per server)."""

    limits = HttpLimits()
    _refusals = 0
    _refusals_logged_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.limits.max_connections:
            self._refuse()
            return
        self._arm_header_timer()

    def _refuse(self) -> None:
        cls = type(self)
        cls._refusals += 1
        now = self.loop.time()
        if now - cls._refusals_logged_at >= _REFUSAL_LOG_SECONDS:
            _log.warning(
                "http.connections_refused",
                refused=cls._refusals,
                limit=self.limits.max_connections,
                hint="--http-max-connections",
            )
            cls._refusals, cls._refusals_logged_at = 0, now
        self.transport.abort()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout_seconds, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._cancel_header_timer()  # a request's headers arrived whole

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)


class _CertificateIdentityProtocol(_BoundedProtocol):
    """HTTP/1.1 that puts the identity of the connection's verified client certificate in the
    scope of each of its requests (uvicorn does not pass the TLS peer on to the app)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Called once the handshake is done: with CERT_REQUIRED the certificate was verified.
        identity = certificate_identity(transport.get_extra_info("peercert"))
        app = self.app

        async def with_identity(scope: Scope, receive: Receive, send: Send) -> None:
            if identity is not None:
                scope[SCOPE_KEY] = identity
            await app(scope, receive, send)

        self.app = with_identity


def parse_listen(listen: str) -> tuple[str, int] | Path:
    """`HOST:PORT`, `[IPV6]:PORT` or `unix:PATH`; ValueError otherwise."""
    if listen.startswith("unix:"):
        path = listen.removeprefix("unix:")
        if not path:
            raise ValueError(f"{listen!r}: unix: needs a socket path")
        return Path(path)
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{listen!r} is not HOST:PORT, [IPV6]:PORT or unix:PATH")
    return host, int(port)


def local_target(grpc_listen: str) -> str:
    """The gRPC target an in-process adapter dials for a server listening on `grpc_listen`:
    a wildcard address becomes loopback (`0.0.0.0:50051` -> `127.0.0.1:50051`,
    `[::]:50051` -> `[::1]:50051`); anything else (`unix:PATH` included) is dialled as it is."""
    host, sep, port = grpc_listen.rpartition(":")
    if not sep or grpc_listen.startswith("unix:"):
        return grpc_listen
    loopback = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}
    return f"{loopback.get(host, host)}:{port}"


def _bind(listen: str, *, reuse_port: bool) -> socket.socket:
    where = parse_listen(listen)
    if isinstance(where, Path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            if where.is_socket():
                where.unlink()
        sock.bind(str(where))
    else:
        host, port = where
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
    return sock


def _address(sock: socket.socket) -> str:
    name = sock.getsockname()
    if isinstance(name, str):
        return f"unix:{name}"
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HttpServer:
    """A running uvicorn server. `address` is where it listens (the real port when 0 was asked)."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], address: str) -> None:
        self._server = server
        self._task = task
        self.address = address

    @property
    def done(self) -> bool:
        return self._task.done()

    async def stop(self) -> None:
        """Stops accepting, lets in-flight requests finish for the grace period given to
        `run_http`, then cancels what is left (open watch streams included) and runs the app's
        shutdown (which closes its gRPC channel)."""
        self._server.should_exit = True
        await self._task


def _config(
    app: ASGIApp, grace: float, access_log: bool, tls: HttpTls | None, limits: HttpLimits
) -> uvicorn.Config:
    client_ca = tls.client_ca if tls is not None else ""
    base = _CertificateIdentityProtocol if client_ca else _BoundedProtocol
    protocol = type(base.__name__, (base,), {"limits": limits})
    config = uvicorn.Config(
        app,
        log_config=None,  # logs go through the process's logging setup (lockservice.logs)
        access_log=access_log,
        lifespan="auto",
        timeout_graceful_shutdown=math.ceil(grace),
        timeout_keep_alive=limits.keepalive_timeout_seconds,  # type: ignore[arg-type]
        server_header=False,
        date_header=False,  # stamped by `DateHeader` as each response starts (see `dates.py`)
        ssl_certfile=tls.cert if tls is not None else None,
        ssl_keyfile=tls.key if tls is not None else None,
        ssl_ca_certs=client_ca or None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
        http=protocol,
    )
    config.load()  # here, so unreadable TLS files are an ssl.SSLError (an OSError) from run_http
    return config


async def run_http(
    app: ASGIApp,
    listen: str,
    *,
    grace: float = 10.0,
    access_log: bool = False,
    tls: HttpTls | None = None,
    reuse_port: bool = False,
    limits: HttpLimits | None = None,
) -> HttpServer:
    """Starts serving `app` on `listen` ("HOST:PORT", "[::1]:PORT", "unix:PATH"; port 0 picks one)
    in the running loop and returns once it accepts connections, each response dated as it
    starts (`dates.DateHeader`): over HTTPS with `tls`; with
    `reuse_port`, on a port other processes may listen on too (SO_REUSEPORT: the kernel spreads
    the connections); within `limits` (timeouts and a connection cap lowered to what the
    process's descriptor limit allows). Raises OSError if it cannot bind or read the TLS files,
    ValueError for a malformed `listen`, RuntimeError if the app's startup fails."""
    limits = limits or HttpLimits()
    limits = replace(limits, max_connections=descriptor_headroom(limits.max_connections))
    config = _config(DateHeader(app, time.time), grace, access_log, tls, limits)
    sock = _bind(listen, reuse_port=reuse_port)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http {listen}")
    deadline = asyncio.get_running_loop().time() + _STARTUP_SECONDS
    while not server.started:
        if task.done() or asyncio.get_running_loop().time() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the HTTP server on {listen} did not start")
        await asyncio.sleep(0.01)
    return HttpServer(server, task, _address(sock))
