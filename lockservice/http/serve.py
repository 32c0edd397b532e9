"""Serving the adapter with uvicorn inside an asyncio loop that is already running (beside the
gRPC server in `lockservice serve`, or alone in the gateway command).

The socket is bound here, before uvicorn starts, so a taken port is an `OSError` from
`run_http` rather than uvicorn's `sys.exit` inside a task; uvicorn's signal handlers are not
installed, so the caller's own SIGTERM handling (drain gRPC, then HTTP) stays in charge.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

__all__ = ["HttpServer", "local_target", "parse_listen", "run_http"]

_STARTUP_SECONDS = 30.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the embedding program owns the signals


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


def _bind(listen: str) -> socket.socket:
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


async def run_http(app: ASGIApp, listen: str, *, grace: float = 10.0, access_log: bool = False) -> HttpServer:
    """Starts serving `app` on `listen` ("HOST:PORT", "[::1]:PORT", "unix:PATH"; port 0 picks one)
    in the running loop and returns once it accepts connections. Raises OSError if it cannot bind,
    ValueError for a malformed `listen`, RuntimeError if the app's startup fails."""
    sock = _bind(listen)
    config = uvicorn.Config(
        app,
        log_config=None,  # logs go through the process's logging setup (lockservice.logs)
        access_log=access_log,
        lifespan="auto",
        timeout_graceful_shutdown=math.ceil(grace),
        server_header=False,
    )
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
