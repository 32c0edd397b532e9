"""Credentials pass through the adapter: the caller's `Authorization` reaches the server as
gRPC metadata, and the server's UNAUTHENTICATED / PERMISSION_DENIED become 401 / 403."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.support import ServerFactory
from tests.http.support import assert_problem, gateway

READER_TOKEN = "reader-token-0123456789abcdef"
WRITER_TOKEN = "writer-token-0123456789abcdef"


def test_401_without_credentials_403_without_rights_and_success_with_them(
    server_factory: ServerFactory, tmp_path: Path, prefix: str
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"reader {READER_TOKEN}\nwriter {WRITER_TOKEN}\n")
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[grant]]\nidentity = "reader"\nprefix = ""\nrights = ["read"]\n\n'
        '[[grant]]\nidentity = "writer"\nprefix = ""\nrights = ["read", "write"]\n'
    )
    server = server_factory(["--auth-tokens", str(tokens), "--auth-policy", str(policy)]).start()
    path = f"/v1/resources/{prefix}/secured"
    with gateway(server, tmp_path) as process, httpx.Client(base_url=process.base_url, timeout=10) as http:
        anonymous = http.put(path, content=b"x")
        assert_problem(anonymous, 401, "UNAUTHENTICATED", code="UNAUTHENTICATED", instance=path)
        assert anonymous.headers["www-authenticate"] == 'Bearer realm="lockservice"'
        wrong = http.get(path, headers={"Authorization": "Bearer not-a-known-token-at-all"})
        assert_problem(wrong, 401, "UNAUTHENTICATED", code="UNAUTHENTICATED")

        reader = {"Authorization": f"Bearer {READER_TOKEN}"}
        denied = http.put(path, content=b"x", headers=reader)
        assert_problem(denied, 403, "PERMISSION_DENIED", code="PERMISSION_DENIED", instance=path)

        writer = {"Authorization": f"Bearer {WRITER_TOKEN}"}
        assert http.put(path, content=b"x", headers={**writer, "If-None-Match": "*"}).status_code == 201
        assert http.get(path, headers=reader).content == b"x"
        assert http.get("/healthz").status_code == 200
