"""Channels: UNAVAILABLE retried with the same request_id, a deadline on every call, TLS with a
bearer token, and one channel shared by several clients."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fake_server import FakeServer, serve_fake

from lockservice_client import (
    Client,
    DeadlineExceeded,
    FeatureNotImplemented,
    Tls,
    Unauthenticated,
    Unavailable,
    connect,
)
from lockservice_client.messages import Fence, resource_pb2
from tests.conftest import ServerProcess

CREATE = "/lockservice.v1.ResourceService/CreateResource"
GET = "/lockservice.v1.ResourceService/GetResource"


@pytest.fixture
def flaky_server() -> Iterator[FakeServer]:
    """CreateResource fails with UNAVAILABLE twice, then answers; GetResource stalls for 2 s."""
    attempts: list[int] = []

    def create(request: bytes, context: grpc.ServicerContext) -> resource_pb2.Resource:
        attempts.append(1)
        if len(attempts) <= 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
        parsed = resource_pb2.CreateResourceRequest.FromString(request)
        return resource_pb2.Resource(key=parsed.key, value=parsed.value, version=1)

    def stall(request: bytes, context: grpc.ServicerContext) -> resource_pb2.Resource:
        time.sleep(2.0)
        return resource_pb2.Resource()

    yield from serve_fake({CREATE: create, GET: stall})


def test_unavailable_is_retried_with_the_same_request_id(flaky_server: FakeServer) -> None:
    with Client(flaky_server.address) as client:
        created = client.create("k", b"v")
    assert (created.key, created.version) == ("k", 1)
    sent = [resource_pb2.CreateResourceRequest.FromString(call.request) for call in flaky_server.calls]
    assert len(sent) == 3
    assert len({request.request_id for request in sent}) == 1
    assert len(sent[0].request_id) == 36


def test_each_logical_operation_gets_a_new_request_id(flaky_server: FakeServer) -> None:
    with Client(flaky_server.address) as client:
        client.create("a", b"v")
        client.create("b", b"v")
    ids = [
        resource_pb2.CreateResourceRequest.FromString(call.request).request_id for call in flaky_server.calls
    ]
    assert len(ids) == 4
    assert ids[0] == ids[1] == ids[2] != ids[3]


def test_a_stalled_call_ends_at_the_client_deadline(flaky_server: FakeServer) -> None:
    with Client(flaky_server.address, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            client.get("k")
    assert time.monotonic() - started < 1.5


def _every_unary_call(client: Client) -> list[Callable[[], Any]]:
    fence = Fence(lock_name="l", token=1)
    return [
        lambda: client.create("k", b"v"),
        lambda: client.get("k"),
        lambda: client.put("k", b"v", fence=fence),
        lambda: client.delete("k"),
        lambda: client.compare_and_set("k", b"v", expect_absent=True),
        lambda: list(client.list("k")),
        lambda: list(client.versions("k")),
        lambda: client.transact([], []),
        lambda: client.update("k", lambda value: b"v"),
        lambda: client.grant_lease(5),
        lambda: client.refresh_lease("x"),
        lambda: client.revoke_lease("x"),
        lambda: client.get_lease("x"),
        lambda: client.acquire_lock("l", ttl_seconds=5),
        lambda: client.acquire_lock("l", ttl_seconds=5, wait=2.0),
        lambda: client.release_lock("l", 1),
        lambda: client.get_lock("l"),
    ]


def test_every_unary_call_carries_the_client_deadline() -> None:
    for fake in serve_fake({}):
        with Client(fake.address, timeout=3.0) as client:
            calls = _every_unary_call(client)
            for call in calls:
                with pytest.raises(FeatureNotImplemented):
                    call()
        methods = [recorded.method.rsplit("/", 1)[1] for recorded in fake.calls]
        assert methods == [
            "CreateResource",
            "GetResource",
            "UpdateResource",
            "DeleteResource",
            "CompareAndSet",
            "ListResources",
            "ListResourceVersions",
            "Transact",
            "GetResource",
            "GrantLease",
            "RefreshLease",
            "RevokeLease",
            "GetLease",
            "AcquireLock",
            "AcquireLock",
            "ReleaseLock",
            "GetLock",
        ]
        remaining = [recorded.time_remaining for recorded in fake.calls]
        assert all(value is not None and 2.0 < value <= 3.1 for value in remaining[:14]), remaining
        assert remaining[14] is not None and 4.0 < remaining[14] <= 5.1  # the wait is added to the deadline


def _self_signed(directory: Path) -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 that is its own CA, and its key (PEM), made by openssl."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert.read_bytes(), key.read_bytes()


def test_tls_with_a_bearer_token(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    credentials = grpc.ssl_server_credentials([(key, cert)])

    def get(request: bytes, context: grpc.ServicerContext) -> resource_pb2.Resource:
        if dict(context.invocation_metadata()).get("authorization") != "Bearer s3cret":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no valid token")
        return resource_pb2.Resource(key="k", version=1)

    for fake in serve_fake({GET: get}, credentials):
        with Client(fake.address, tls=Tls(root_certificates=cert), token="s3cret") as client:
            assert client.get("k").version == 1
        with Client(fake.address, tls=Tls(root_certificates=cert)) as client, pytest.raises(Unauthenticated):
            client.get("k")
        with Client(fake.address, timeout=2.0) as plaintext, pytest.raises(Unavailable):
            plaintext.get("k")
        assert [call.metadata.get("authorization") for call in fake.calls] == ["Bearer s3cret", None]


def test_a_token_without_tls_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="need TLS"):
        Client("127.0.0.1:1", token="s3cret")


def test_clients_share_one_channel_and_leave_it_open(server: ServerProcess, prefix: str) -> None:
    channel = connect(server.address)
    first, second = Client(channel=channel), Client(channel=channel)
    first.create(f"{prefix}/k", b"v")
    first.close()
    assert second.get(f"{prefix}/k").value == b"v"
    second.close()
    assert Client(channel=channel).get(f"{prefix}/k").version == 1
    channel.close()
