"""HTTPS and mutual TLS for the HTTP adapter: in `lockservice serve --http-listen` with the
server's own certificate, and in the standalone gateway, which also dials a TLS target.

The HTTP caller's identity is what authorization sees: its bearer token, or with mutual TLS its
own verified certificate; never the adapter's.

SQLite only: TLS ends before the store is reached, the same for every backend.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509

from bench.ports import free_port
from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.ops_support import CertificateAuthority, Pem, tls_channel, write_tokens
from tests.e2e.support import ServerFactory, expect_failure
from tests.e2e.test_ops_tls import start_tls
from tests.http.support import GatewayProcess, assert_problem

pytestmark = pytest.mark.backend_specific("sqlite", reason="TLS ends before the store is reached")

TOKEN = "orders-token-0123456789abcdef"


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


def https(base_url: str, ca: CertificateAuthority, client: Pem | None = None) -> httpx.Client:
    """A client that trusts `ca` and presents `client`'s certificate, if given."""
    context = ssl.create_default_context(cafile=str(ca.pem.cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return httpx.Client(base_url=base_url, verify=context, timeout=10)


def handshake(address: str, ca: CertificateAuthority, client: Pem | None = None) -> str:
    """Completes a TLS 1.2 handshake with the server at `address` and returns the version. In
    1.2, unlike 1.3, the server's verdict on the client's certificate is part of the client's
    handshake: a refusal is an `ssl.SSLError` here, before any HTTP."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca.pem.cert))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


def write_policy(directory: Path) -> Path:
    path = directory / "policy.toml"
    path.write_text('[[grant]]\nidentity = "orders"\nprefix = "orders/"\nrights = ["read", "write"]\n')
    return path


def put_created(http: httpx.Client, path: str, value: bytes, **headers: str) -> None:
    response = http.put(path, content=value, headers={"If-None-Match": "*", **headers})
    assert (response.status_code, response.json()["version"]) == (201, 1), response.text


def test_serve_answers_https_with_its_certificate_and_refuses_plain_http(
    server_factory: ServerFactory, ca: CertificateAuthority, tmp_path: Path, prefix: str
) -> None:
    cert = ca.issue("localhost", server=True)
    tokens = write_tokens(tmp_path, {"orders": TOKEN})
    http_address = f"127.0.0.1:{free_port()}"
    server = server_factory(
        [
            *("--tls-cert", str(cert.cert), "--tls-key", str(cert.key)),
            *("--auth-tokens", str(tokens), "--http-listen", http_address),
        ]
    )
    start_tls(server, ca)
    path = f"/v1/resources/{prefix}/doc"
    with https(f"https://{http_address}", ca) as http:
        # The caller's own Authorization is what the server authenticates.
        anonymous = http.put(path, content=b"v1")
        assert_problem(anonymous, 401, "UNAUTHENTICATED", code="UNAUTHENTICATED", instance=path)
        put_created(http, path, b"v1", Authorization=f"Bearer {TOKEN}", **{"Content-Type": "text/plain"})
        read = http.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert (read.status_code, read.content, read.headers["content-type"]) == (200, b"v1", "text/plain")
        assert http.get("/readyz").json() == {"status": "ready"}
    # Plain HTTP on the HTTPS port: the server closes the connection without an answer.
    with pytest.raises(httpx.RemoteProtocolError), httpx.Client(timeout=10) as plain:
        plain.get(f"http://{http_address}/healthz")
    # A client that does not trust the server's CA refuses it.
    with (
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        httpx.Client(timeout=10) as untrusting,
    ):
        untrusting.get(f"https://{http_address}/healthz")
    assert server.stop() == 0


def test_serve_with_mutual_tls_requires_a_client_certificate_and_authorizes_its_identity(
    server_factory: ServerFactory, ca: CertificateAuthority, tmp_path: Path, prefix: str
) -> None:
    cert = ca.issue("localhost", server=True)
    orders = ca.issue("orders", server=False)
    billing = ca.issue("billing", server=False)
    http_address = f"127.0.0.1:{free_port()}"
    server = server_factory(
        [
            *("--tls-cert", str(cert.cert), "--tls-key", str(cert.key), "--tls-client-ca", str(ca.pem.cert)),
            *("--auth-policy", str(write_policy(tmp_path)), "--http-listen", http_address),
        ]
    )
    start_tls(server, ca, orders)
    base_url = f"https://{http_address}"

    # No client certificate, or one from another CA: the handshake fails, before any HTTP.
    with pytest.raises(ssl.SSLEOFError):
        handshake(http_address, ca)
    (tmp_path / "stranger").mkdir()
    stranger = CertificateAuthority(tmp_path / "stranger", "stranger CA").issue("orders", server=False)
    with pytest.raises(ssl.SSLEOFError):
        handshake(http_address, ca, stranger)
    assert handshake(http_address, ca, orders) == "TLSv1.2"
    # Over TLS 1.3 the client learns it when it reads: the connection closes, unanswered.
    with pytest.raises(httpx.RemoteProtocolError), https(base_url, ca) as http:
        http.get("/healthz")

    with https(base_url, ca, orders) as http:
        # The certificate's common name is the identity the table grants...
        put_created(http, "/v1/resources/orders/1", b"x")
        assert http.get("/v1/resources/orders/1").content == b"x"
        # ... and only what it grants.
        denied = http.put(f"/v1/resources/{prefix}/k", content=b"x")
        assert_problem(denied, 403, "PERMISSION_DENIED", code="PERMISSION_DENIED")
        assert denied.json()["metadata"] == {"identity": "orders", "right": "write", "key": f"{prefix}/k"}
        # A client's own header cannot claim another identity: only the adapter's metadata could.
        spoofed = http.put(
            f"/v1/resources/{prefix}/k", content=b"x", headers={"Lockservice-Client-Identity": "root"}
        )
        assert spoofed.json()["metadata"]["identity"] == "orders"
    with https(base_url, ca, billing) as http:
        denied = http.put("/v1/resources/orders/2", content=b"x")
        assert_problem(denied, 403, "PERMISSION_DENIED", code="PERMISSION_DENIED")
        assert denied.json()["metadata"] == {"identity": "billing", "right": "write", "key": "orders/2"}

    # On the public gRPC port, the adapter's metadata counts for nothing: the caller is its certificate.
    with tls_channel(server.address, ca.pem, billing) as channel:
        failure = expect_failure(
            resource_pb2_grpc.ResourceServiceStub(channel).CreateResource,
            resource_pb2.CreateResourceRequest(key="orders/3", value=b"v"),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
            metadata=(("lockservice-client-identity", "orders"), ("lockservice-adapter-secret", "guess")),
        )
        assert failure.metadata == {"identity": "billing", "right": "write", "key": "orders/3"}
    assert server.stop() == 0


@contextmanager
def tls_gateway(
    target: ServerProcess, workdir: Path, ca: CertificateAuthority, client: Pem, extra_args: list[str]
) -> Iterator[GatewayProcess]:
    """A gateway serving HTTPS in front of `target`, ready for a client with the `client` certificate."""
    process = GatewayProcess(target.address, workdir / "gateway.log", extra_args)
    process.base_url = f"https://127.0.0.1:{process.port}"
    try:
        deadline = time.monotonic() + 20
        with https(process.base_url, ca, client) as http:
            while True:
                if process.process.poll() is not None:
                    raise RuntimeError(f"gateway exited with {process.process.returncode}:\n{process.logs()}")
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, process.logs()
                    time.sleep(0.05)
        yield process
    finally:
        process.stop()


def test_gateway_serves_https_with_mutual_tls_in_front_of_a_mutual_tls_server(
    server_factory: ServerFactory, ca: CertificateAuthority, tmp_path: Path
) -> None:
    server_cert = ca.issue("localhost", server=True)
    gateway_identity = ca.issue("gateway", server=False)
    caller = ca.issue("caller", server=False)
    tokens = write_tokens(tmp_path, {"orders": TOKEN})
    server = server_factory(
        [
            *("--tls-cert", str(server_cert.cert), "--tls-key", str(server_cert.key)),
            *("--tls-client-ca", str(ca.pem.cert), "--auth-tokens", str(tokens)),
            *("--auth-policy", str(write_policy(tmp_path))),
        ]
    )
    start_tls(server, ca, gateway_identity)
    # The gateway's HTTPS certificate is the server's here; any certificate for its name will do.
    gateway_args = [
        *("--tls-cert", str(server_cert.cert), "--tls-key", str(server_cert.key)),
        *("--tls-client-ca", str(ca.pem.cert), "--target-ca", str(ca.pem.cert)),
        *("--target-cert", str(gateway_identity.cert), "--target-key", str(gateway_identity.key)),
    ]
    with tls_gateway(server, tmp_path, ca, caller, gateway_args) as gateway:
        address = gateway.base_url.removeprefix("https://")
        with pytest.raises(ssl.SSLEOFError):
            handshake(address, ca)
        assert handshake(address, ca, caller) == "TLSv1.2"
        with https(gateway.base_url, ca, caller) as http:
            # Without a token of its own the caller would act as the gateway: refused instead.
            anonymous = http.put("/v1/resources/orders/1", content=b"x")
            assert_problem(anonymous, 401, "UNAUTHENTICATED", code="UNAUTHENTICATED")
            assert anonymous.headers["www-authenticate"] == 'Bearer realm="lockservice"'
            put_created(http, "/v1/resources/orders/1", b"x", Authorization=f"Bearer {TOKEN}")
            read = http.get("/v1/resources/orders/1", headers={"Authorization": f"Bearer {TOKEN}"})
            assert (read.status_code, read.content) == (200, b"x")
            assert http.get("/readyz").json() == {"status": "ready"}
    assert server.stop() == 0


def test_gateway_dials_a_tls_server_and_serves_plain_http(
    server_factory: ServerFactory, ca: CertificateAuthority, tmp_path: Path, prefix: str
) -> None:
    cert = ca.issue("localhost", server=True)
    server = start_tls(server_factory(["--tls-cert", str(cert.cert), "--tls-key", str(cert.key)]), ca)
    process = GatewayProcess(server.address, tmp_path / "gateway.log", ["--target-ca", str(ca.pem.cert)])
    try:
        process.wait_ready()
        with httpx.Client(base_url=process.base_url, timeout=10) as http:
            put_created(http, f"/v1/resources/{prefix}/k", b"v")
            assert http.get(f"/v1/resources/{prefix}/k").content == b"v"
    finally:
        assert process.stop() == 0
    # Without the CA the gateway cannot reach the server: not ready, 503.
    untrusting = GatewayProcess(server.address, tmp_path / "untrusting.log", ["--target-tls"])
    try:
        untrusting.wait_ready()
        with httpx.Client(base_url=untrusting.base_url, timeout=10) as http:
            unready = http.get("/readyz")
            assert (unready.status_code, unready.json()["code"]) == (503, "UNAVAILABLE")
    finally:
        untrusting.stop()
    assert server.stop() == 0


def test_a_certificate_identity_follows_one_rule_on_both_ports(
    server_factory: ServerFactory, ca: CertificateAuthority, tmp_path: Path
) -> None:
    """Issue #14 item 5: a client certificate with no common name was UNAUTHENTICATED on gRPC
    but its first SAN over HTTP. One rule on both ports: the subject common name, else the
    first DNS, URI, email or IP subject alternative name; a certificate with neither is refused
    alike (UNAUTHENTICATED / 401)."""
    cert = ca.issue("localhost", server=True)
    spiffe = "spiffe://lockservice.test/orders"
    san_only = ca.issue(
        "san-only",
        server=False,
        with_common_name=False,
        alternative_names=[x509.UniformResourceIdentifier(spiffe), x509.DNSName("orders.internal")],
    )
    nameless = ca.issue("nameless", server=False, with_common_name=False)
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[[grant]]\nidentity = "{spiffe}"\nprefix = "orders/"\nrights = ["read", "write"]\n')
    http_address = f"127.0.0.1:{free_port()}"
    server = server_factory(
        [
            *("--tls-cert", str(cert.cert), "--tls-key", str(cert.key), "--tls-client-ca", str(ca.pem.cert)),
            *("--auth-policy", str(policy), "--http-listen", http_address),
        ]
    )
    start_tls(server, ca, san_only)
    base_url = f"https://{http_address}"

    with tls_channel(server.address, ca.pem, san_only) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        stub.CreateResource(resource_pb2.CreateResourceRequest(key="orders/grpc", value=b"v"), timeout=10)
        failure = expect_failure(
            stub.CreateResource,
            resource_pb2.CreateResourceRequest(key="billing/1", value=b"v"),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
        assert failure.metadata == {"identity": spiffe, "right": "write", "key": "billing/1"}
    with https(base_url, ca, san_only) as http:
        put_created(http, "/v1/resources/orders/http", b"x")
        denied = http.put("/v1/resources/billing/1", content=b"x")
        assert_problem(denied, 403, "PERMISSION_DENIED", code="PERMISSION_DENIED")
        assert denied.json()["metadata"] == {"identity": spiffe, "right": "write", "key": "billing/1"}

    with tls_channel(server.address, ca.pem, nameless) as channel:
        expect_failure(
            resource_pb2_grpc.ResourceServiceStub(channel).GetResource,
            resource_pb2.GetResourceRequest(key="orders/grpc"),
            grpc.StatusCode.UNAUTHENTICATED,
            "UNAUTHENTICATED",
        )
    with https(base_url, ca, nameless) as http:
        assert_problem(http.get("/v1/resources/orders/grpc"), 401, "UNAUTHENTICATED", code="UNAUTHENTICATED")
    assert server.stop() == 0
