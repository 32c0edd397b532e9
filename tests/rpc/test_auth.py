"""Whom the Guard sees: a token first, then (mutual TLS) the in-process adapter's verified
identity, on its private socket with its secret only, then the connection's certificate."""

from __future__ import annotations

from typing import Any

import pytest

from lockservice.authfiles import token_digest
from lockservice.errors import Unauthenticated
from lockservice.rpc.auth import Guard

SECRET = "adapter-secret"
TOKEN = "0123456789abcdef0123456789abcdef"


class Context:
    """The parts of a grpc.aio.ServicerContext the Guard reads."""

    def __init__(self, metadata: dict[str, str], transport: bytes, common_name: str = "") -> None:
        self._metadata = tuple(metadata.items())
        self._auth: dict[str, list[bytes]] = {"transport_security_type": [transport]}
        if common_name:
            self._auth["x509_common_name"] = [common_name.encode()]

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def identify(guard: Guard, context: Context) -> str:
    fake: Any = context
    return guard.identify(fake)


def adapter(identity: str, secret: str = SECRET) -> dict[str, str]:
    return {"lockservice-client-identity": identity, "lockservice-adapter-secret": secret}


def test_the_adapters_identity_counts_on_the_private_socket_with_the_secret_only() -> None:
    guard = Guard(
        {token_digest(TOKEN): "token-holder"}, None, client_certificates=True, adapter_secret=SECRET
    )
    assert identify(guard, Context(adapter("orders"), b"local")) == "orders"
    assert identify(guard, Context(adapter("orders") | {"authorization": f"Bearer {TOKEN}"}, b"local")) == (
        "token-holder"
    )
    # On the public port the connection's certificate decides, whatever the metadata says.
    assert identify(guard, Context(adapter("orders"), b"ssl", common_name="billing")) == "billing"
    for refused in (
        Context(adapter("orders", secret="guess"), b"local"),
        Context(adapter("orders"), b"ssl"),
        Context(adapter("orders"), b"insecure"),
        Context({"lockservice-client-identity": "orders"}, b"local"),
    ):
        with pytest.raises(Unauthenticated):
            identify(guard, refused)


def test_no_adapter_identity_without_client_certificates_or_a_secret() -> None:
    tokens_only = Guard({}, None, client_certificates=False, adapter_secret=SECRET)
    with pytest.raises(Unauthenticated):
        identify(tokens_only, Context(adapter("orders"), b"local"))
    no_secret = Guard({}, None, client_certificates=True)
    for secret in ("", SECRET):
        with pytest.raises(Unauthenticated):
            identify(no_secret, Context(adapter("orders", secret=secret), b"local"))
