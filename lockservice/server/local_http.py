"""The HTTP adapter in the server's own process (`lockservice serve --http-listen`).

It serves HTTP, or HTTPS with the server's own certificate and key when `--tls-cert` is set,
and with `--tls-client-ca` it requires and verifies client certificates exactly as the gRPC
port does (`lockservice.http.serve.HttpTls`).

It reaches gRPC over a private unix socket of this server (in a fresh directory only this user
may enter, with gRPC's local credentials), never through the public port. Through the public
port, under TLS, it would have to trust the server's certificate for a loopback name it rarely
carries, and under mutual TLS present a client certificate of its own, whose identity every HTTP
caller without a token would then borrow. On the private socket the adapter has no identity: an
HTTP caller is who its `Authorization` says or, with mutual TLS, who its own verified
certificate says; the adapter passes that on with a per-process secret, which the server's
`Guard` honours on this socket only (`lockservice.rpc.auth`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from typing import TYPE_CHECKING

import grpc

from lockservice.settings import Settings

if TYPE_CHECKING:
    from lockservice.http.serve import HttpServer

__all__ = ["LocalHttp"]

_UDS = grpc.LocalConnectionType.UDS


# sockaddr_un's sun_path holds 108 bytes on Linux, the terminating NUL included.
_SOCKET_PATH_MAX = 107


class LocalHttp:
    """The adapter for `settings.http_listen`: `bind` the private socket before the gRPC server
    starts, `start` after it; `stop` (also after a failed `bind` or `start`) ends it all and
    removes the socket's directory."""

    def __init__(self, settings: Settings, message_limit: int) -> None:
        self._settings = settings
        self._message_limit = message_limit
        # Passed to the Guard and to the adapter: it vouches for the certificate identities the
        # adapter verified. Never logged, never leaves the process but over the private socket.
        self.secret = secrets.token_urlsafe(32)
        self._directory = ""
        self._channel: grpc.aio.Channel | None = None
        self._http: HttpServer | None = None

    @property
    def _target(self) -> str:
        return f"unix:{self._directory}/grpc.sock"

    def bind(self, server: grpc.aio.Server) -> None:
        """Adds the private socket to `server`; RuntimeError or OSError if it cannot (OSError
        saying to set TMPDIR when no temporary directory is writable, as under a read-only root)."""
        try:
            self._directory = tempfile.mkdtemp(prefix="lockservice-http-")  # mode 0700
        except FileNotFoundError as error:  # tempfile's "No usable temporary directory found"
            raise OSError(
                "no writable temporary directory for the HTTP adapter's private socket: set TMPDIR "
                f"to a writable directory (an emptyDir under a read-only root): {error}"
            ) from None
        socket_path = f"{self._directory}/grpc.sock"
        if len(os.fsencode(socket_path)) > _SOCKET_PATH_MAX:
            os.rmdir(self._directory)
            raise OSError(
                f"the HTTP adapter's private socket path {socket_path} is longer than a unix socket "
                f"allows ({_SOCKET_PATH_MAX} bytes): set TMPDIR to a shorter directory"
            )
        server.add_secure_port(self._target, grpc.local_server_credentials(_UDS))

    async def start(self) -> HttpServer:
        """Serves HTTP(S) on `--http-listen`; OSError, ValueError or RuntimeError if it cannot."""
        # The HTTP stack (Starlette, uvicorn) is loaded only by a server that serves HTTP.
        from lockservice.http.app import create_app
        from lockservice.http.options import HttpOptions
        from lockservice.http.serve import HttpLimits, HttpTls, run_http

        settings = self._settings
        self._channel = grpc.aio.secure_channel(
            self._target,
            grpc.local_channel_credentials(_UDS),
            options=[
                ("grpc.max_receive_message_length", self._message_limit),
                ("grpc.max_send_message_length", self._message_limit),
            ],
        )
        options = HttpOptions(
            client_identity_secret=self.secret if settings.tls_client_ca else "", limits=settings.limits
        )
        tls = (
            HttpTls(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
            if settings.tls_cert
            else None
        )
        self._http = await run_http(
            create_app(channel=self._channel, options=options),
            settings.http_listen,
            grace=settings.grace_period_seconds,
            tls=tls,
            reuse_port=settings.reuse_port,
            limits=HttpLimits(
                max_connections=settings.http_max_connections,
                header_timeout_seconds=settings.http_header_timeout_seconds,
                keepalive_timeout_seconds=settings.http_keepalive_timeout_seconds,
            ),
        )
        return self._http

    async def stop(self) -> None:
        """Lets in-flight requests finish for the grace period, then closes the channel."""
        if self._http is not None:
            await self._http.stop()
        if self._channel is not None:
            await self._channel.close()
        if self._directory:
            shutil.rmtree(self._directory, ignore_errors=True)
