"""TLS and mutual TLS: handshakes with certificates made for the test, refusals without a valid
client certificate, and the certificate's identity under the authorization table.

SQLite only: TLS ends before the store is reached, the same for every backend.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest

from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.conftest import LOCKSERVICE, ServerProcess, wait_until_serving
from tests.e2e.ops_support import CertificateAuthority, Pem, tls_channel
from tests.e2e.support import ServerFactory, expect_failure

pytestmark = pytest.mark.backend_specific("sqlite", reason="TLS ends before the store is reached")


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


def start_tls(server: ServerProcess, ca: CertificateAuthority, client: Pem | None = None) -> ServerProcess:
    server.launch()
    assert server.process is not None
    with tls_channel(server.address, ca.pem, client) as channel:
        wait_until_serving(server.address, server.process, logs=server.logs, channel=channel)
    return server


def create(channel: grpc.Channel, key: str) -> resource_pb2.Resource:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    reply: resource_pb2.Resource = resources.CreateResource(
        resource_pb2.CreateResourceRequest(key=key, value=b"v"), timeout=5
    )
    return reply


def refused(channel: grpc.Channel) -> grpc.StatusCode:
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        resources.GetResource(resource_pb2.GetResourceRequest(key="k"), timeout=5)
    code: grpc.StatusCode = caught.value.code()
    return code


def health(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOCKSERVICE, "health", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_tls_serves_clients_that_trust_the_ca_and_refuses_plaintext(
    server_factory: ServerFactory, ca: CertificateAuthority, prefix: str
) -> None:
    cert = ca.issue("localhost", server=True)
    server = start_tls(server_factory(["--tls-cert", str(cert.cert), "--tls-key", str(cert.key)]), ca)
    with tls_channel(server.address, ca.pem) as channel:
        assert create(channel, f"{prefix}/k").version == 1
    with grpc.insecure_channel(server.address) as channel:
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE
    other = CertificateAuthority(server.workdir, "another CA")
    with tls_channel(server.address, other.pem) as channel:
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE

    result = health("--target", server.address, "--tls-ca", str(ca.pem.cert))
    assert (result.returncode, result.stdout) == (0, f"{server.address}: SERVING\n")
    result = health("--target", server.address, "--timeout", "2")
    assert result.returncode == 1
    assert result.stderr.startswith(f"lockservice health: {server.address}: UNAVAILABLE: ")
    assert server.stop() == 0


def test_mutual_tls_refuses_clients_without_a_valid_certificate(
    server_factory: ServerFactory, ca: CertificateAuthority, prefix: str, tmp_path: Path
) -> None:
    cert = ca.issue("localhost", server=True)
    client = ca.issue("orders", server=False)
    policy = tmp_path / "policy.toml"
    policy.write_text('[[grant]]\nidentity = "orders"\nprefix = "orders/"\nrights = ["read", "write"]\n')
    server = server_factory(
        [
            *("--tls-cert", str(cert.cert), "--tls-key", str(cert.key)),
            *("--tls-client-ca", str(ca.pem.cert), "--auth-policy", str(policy)),
        ]
    )
    start_tls(server, ca, client)

    with tls_channel(server.address, ca.pem) as channel:  # no client certificate
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE
    (tmp_path / "stranger").mkdir()
    stranger = CertificateAuthority(tmp_path / "stranger", "stranger CA").issue("orders", server=False)
    with tls_channel(server.address, ca.pem, stranger) as channel:  # signed by another CA
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE

    with tls_channel(server.address, ca.pem, client) as channel:
        # The certificate's common name is the identity the table grants.
        assert create(channel, "orders/1").version == 1
        failure = expect_failure(
            resource_pb2_grpc.ResourceServiceStub(channel).CreateResource,
            resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"v"),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
        assert failure.metadata == {"identity": "orders", "right": "write", "key": f"{prefix}/k"}

    result = health(
        *("--target", server.address, "--tls-ca", str(ca.pem.cert)),
        *("--tls-cert", str(client.cert), "--tls-key", str(client.key)),
    )
    assert result.returncode == 0, result.stderr
    assert health("--target", server.address, "--tls-ca", str(ca.pem.cert), "--timeout", "2").returncode == 1
    assert server.stop() == 0
