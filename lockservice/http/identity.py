"""Who an HTTPS caller is, by its verified client certificate, and how the in-process adapter
tells its own server.

With mutual TLS the HTTP listener verifies every client certificate against the same CA as the
gRPC port, and the connection's identity is taken by the same rule as gRPC's: the subject common
name, else the first subject alternative name (DNS, URI, email or IP address).

Only the adapter that `lockservice serve --http-listen` runs in its own process passes that
identity on, as `lockservice-client-identity` metadata (`lockservice.adapter_metadata`), with
the per-process secret the server gave it, over the server's private unix socket; the server
honours the pair on that socket only (`lockservice.rpc.auth`). A standalone gateway never passes
it: a remote server cannot tell a gateway's claim from anyone else's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

__all__ = ["SCOPE_KEY", "certificate_identity"]

# The ASGI scope key holding the connection's verified certificate identity (absent without one).
SCOPE_KEY = "lockservice.client_certificate_identity"

# Python's names of the subject alternative names gRPC reports, in the certificate's order.
_SAN_TYPES = ("DNS", "URI", "email", "IP Address")


def certificate_identity(peer_certificate: Mapping[str, Any] | None) -> str | None:
    """The identity of a verified peer certificate as `ssl.SSLSocket.getpeercert()` decodes it:
    its subject common name, else its first DNS, URI, email or IP subject alternative name;
    None without a certificate or a name."""
    if not peer_certificate:
        return None
    for rdn in peer_certificate.get("subject", ()):
        for name, value in rdn:
            if name == "commonName" and value:
                return str(value)
    for kind, value in peer_certificate.get("subjectAltName", ()):
        if kind not in _SAN_TYPES or not value:
            continue
        if kind == "IP Address":
            # Python spells IPv6 in full upper case; gRPC as inet_ntop does.
            return str(ipaddress.ip_address(str(value).strip()))
        return str(value)
    return None
