"""TLS credentials from PEM files: the server's (TLS, or mutual TLS with a client CA) and a
client's (for `lockservice health` and tests)."""

from __future__ import annotations

import grpc

__all__ = ["channel_credentials", "server_credentials"]


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def server_credentials(cert: str, key: str, client_ca: str = "") -> grpc.ServerCredentials:
    """TLS with the certificate chain `cert` and its `key`; with `client_ca`, every client must
    present a certificate signed by it (mutual TLS), or the handshake fails."""
    return grpc.ssl_server_credentials(
        [(_read(key), _read(cert))],
        root_certificates=_read(client_ca) if client_ca else None,
        require_client_auth=bool(client_ca),
    )


def channel_credentials(ca: str = "", cert: str = "", key: str = "") -> grpc.ChannelCredentials:
    """Trusts `ca` (the system roots when empty); presents `cert` and `key` when given (mTLS)."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca) if ca else None,
        private_key=_read(key) if key else None,
        certificate_chain=_read(cert) if cert else None,
    )
