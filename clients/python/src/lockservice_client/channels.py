"""Channels to a lockservice server: retries on UNAVAILABLE by service config, TLS, credentials.

The channel retries a call that failed with UNAVAILABLE (a broken connection, a draining server,
an unreachable store) by resending the same request bytes, so the request_id a write was given
is reused on every attempt and the server applies it at most once. A channel is thread-safe and
meant to be shared: pass it to several clients with `Client(channel=...)`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = [
    "DEFAULT_TARGET",
    "RETRY_POLICY",
    "SERVICES",
    "Tls",
    "channel_options",
    "connect",
    "connect_async",
    "default_target",
]

DEFAULT_TARGET = "127.0.0.1:50051"
TARGET_VARIABLE = "LOCKSERVICE_TARGET"
SERVICES = ("lockservice.v1.ResourceService", "lockservice.v1.LeaseService", "lockservice.v1.LockService")

# gRPC retry policy (gRFC A6): at most 5 attempts, backing off 0.1 s, 0.2 s, 0.4 s, 0.8 s (jittered
# by gRPC), on UNAVAILABLE only: every other code is an answer the caller must see.
RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_SERVICE_CONFIG = json.dumps(
    {"methodConfig": [{"name": [{"service": name} for name in SERVICES], "retryPolicy": RETRY_POLICY}]}
)

ChannelOption = tuple[str, Any]


@dataclass(frozen=True)
class Tls:
    """TLS settings: PEM bytes. All None uses the system's trusted roots and no client certificate.

    `server_name` overrides the name checked against the server's certificate (for a certificate
    issued to a name other than the target's host).
    """

    root_certificates: bytes | None = None
    private_key: bytes | None = None
    certificate_chain: bytes | None = None
    server_name: str | None = None


def default_target() -> str:
    """`LOCKSERVICE_TARGET`, or 127.0.0.1:50051."""
    return os.environ.get(TARGET_VARIABLE) or DEFAULT_TARGET


def channel_options(tls: Tls | None = None, extra: Sequence[ChannelOption] = ()) -> list[ChannelOption]:
    options: list[ChannelOption] = [("grpc.enable_retries", 1), ("grpc.service_config", _SERVICE_CONFIG)]
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return [*options, *extra]


def _credentials(
    tls: Tls | None, token: str | None, call_credentials: grpc.CallCredentials | None
) -> grpc.ChannelCredentials | None:
    """None for a plaintext channel. A token or call credentials need TLS (gRPC sends no
    credentials in the clear)."""
    per_call = [grpc.access_token_call_credentials(token)] if token else []
    if call_credentials is not None:
        per_call.append(call_credentials)
    if tls is None:
        if per_call:
            raise ValueError("a token or call credentials need TLS: pass tls=Tls(...)")
        return None
    channel_credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.root_certificates,
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )
    if per_call:
        return grpc.composite_channel_credentials(channel_credentials, *per_call)
    return channel_credentials


def connect(
    target: str | None = None,
    *,
    tls: Tls | None = None,
    token: str | None = None,
    call_credentials: grpc.CallCredentials | None = None,
    options: Sequence[ChannelOption] = (),
) -> grpc.Channel:
    """A channel to `target` (default: `default_target()`), plaintext unless `tls` is given."""
    address = target or default_target()
    credentials = _credentials(tls, token, call_credentials)
    all_options = channel_options(tls, options)
    if credentials is None:
        return grpc.insecure_channel(address, options=all_options)
    return grpc.secure_channel(address, credentials, options=all_options)


def connect_async(
    target: str | None = None,
    *,
    tls: Tls | None = None,
    token: str | None = None,
    call_credentials: grpc.CallCredentials | None = None,
    options: Sequence[ChannelOption] = (),
) -> grpc.aio.Channel:
    """The asyncio flavour of `connect`; create it inside the event loop that uses it."""
    address = target or default_target()
    credentials = _credentials(tls, token, call_credentials)
    all_options = channel_options(tls, options)
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=all_options)
    return grpc.aio.secure_channel(address, credentials, options=all_options)
