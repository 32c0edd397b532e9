"""Who is calling, and may they: authentication from the call, authorization by the core's table.

An identity comes from a bearer token in the `authorization` metadata (`Bearer TOKEN`, checked
against the `--auth-tokens` file) or, without a token, from the verified client certificate of a
mutual-TLS connection (its subject common name, else its first subject alternative name). A
token that is presented must be valid, even on a connection with a client certificate.

The in-process HTTP adapter (`lockservice serve --http-listen`) reaches this server over a private
unix socket with no certificate of its own. With mutual TLS it verifies each HTTPS caller's
client certificate itself and passes the identity on as `lockservice-client-identity` metadata
with the per-process secret this guard was given; the pair is honoured only on that socket's
local transport and only with the right secret, so no other caller can claim an identity, and no
HTTP caller ever gets one it did not prove.

The identity of the current call is kept in a context variable (each gRPC call runs in its own
task, so its own context) for the servicers, which pass it to the core as the owner of leases;
with a policy, so is what the caller may see (`core.visibility`), which every error answer goes
through. Nothing here runs, and nothing costs, when authentication is off.
"""

from __future__ import annotations

import contextvars
import hmac
from collections.abc import Mapping
from typing import Any

import grpc

from lockservice.adapter_metadata import ADAPTER_SECRET_METADATA, CLIENT_IDENTITY_METADATA
from lockservice.authfiles import token_digest
from lockservice.core.access import AccessPolicy
from lockservice.core.visibility import EVERYTHING, Visibility
from lockservice.errors import Unauthenticated
from lockservice.rpc.permissions import required_access

__all__ = ["Guard", "caller", "visibility"]

_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("lockservice_caller", default=None)
_visibility: contextvars.ContextVar[Visibility] = contextvars.ContextVar(
    "lockservice_visibility", default=EVERYTHING
)
_BEARER = "bearer "


def caller() -> str | None:
    """The authenticated identity of the current call; None when authentication is off."""
    return _caller.get()


def visibility() -> Visibility:
    """What the caller of the current call may see; everything without a policy."""
    return _visibility.get()


def _certificate_identity(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The subject common name, else the first subject alternative name, as the HTTP listener
    takes it (`lockservice.http.identity`). gRPC reports a certificate without a common name as
    an empty one, which names nobody."""
    auth = context.auth_context()
    for property_name in ("x509_common_name", "x509_subject_alternative_name"):
        for value in auth.get(property_name) or ():
            if value:
                return value.decode()
    return None


def _metadata(context: grpc.aio.ServicerContext[Any, Any], wanted: str) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == wanted:
            return str(value)
    return None


class Guard:
    """Authenticates every call, then checks the rights its request needs on its keys.

    `adapter_secret` is the secret the in-process HTTP adapter sends with the certificate
    identities it passes on (empty: none is accepted)."""

    def __init__(
        self,
        tokens: Mapping[bytes, str],
        policy: AccessPolicy | None,
        *,
        client_certificates: bool,
        adapter_secret: str = "",
    ) -> None:
        self._tokens = dict(tokens)
        self._policy = policy
        self._client_certificates = client_certificates
        self._adapter_secret = adapter_secret.encode()

    def identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        authorization = _metadata(context, "authorization")
        if authorization is not None:
            return self._token_identity(authorization)
        if self._client_certificates:
            identity = self._adapter_identity(context) or _certificate_identity(context)
            if identity:
                return identity
        raise Unauthenticated(
            "this server needs credentials: send 'authorization: Bearer TOKEN' metadata"
            + (" or connect with a client certificate" if self._client_certificates else ""),
            metadata={"scheme": "Bearer"},
        )

    def _adapter_identity(self, context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
        """The identity the in-process adapter verified, if this call is the adapter's."""
        identity = _metadata(context, CLIENT_IDENTITY_METADATA)
        secret = _metadata(context, ADAPTER_SECRET_METADATA)
        if not (self._adapter_secret and identity and secret):
            return None
        if context.auth_context().get("transport_security_type") != [b"local"]:
            return None  # only the private unix socket, never the public port
        return identity if hmac.compare_digest(secret.encode(), self._adapter_secret) else None

    def _token_identity(self, header: str) -> str:
        if header[: len(_BEARER)].lower() != _BEARER:
            raise Unauthenticated(
                "the authorization metadata must be 'Bearer TOKEN'", metadata={"scheme": "Bearer"}
            )
        identity = self._tokens.get(token_digest(header[len(_BEARER) :].strip()))
        if identity is None:
            raise Unauthenticated("the bearer token is not valid", metadata={"scheme": "Bearer"})
        return identity

    def admit(self, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """The caller's identity, once it may make this call; raises UNAUTHENTICATED or
        PERMISSION_DENIED otherwise. Binds the identity to the call's context for `caller()`."""
        identity = self.identify(context)
        if self._policy is not None:
            for right, key, whole_prefix in required_access(method, request):
                self._policy.check(identity, right, key, whole_prefix=whole_prefix)
            _visibility.set(Visibility(self._policy, identity))
        _caller.set(identity)
        return identity
