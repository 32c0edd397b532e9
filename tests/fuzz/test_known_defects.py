"""Inputs the fuzzers found that meet defects fixed on other branches. The fuzz tests steer their
generators away from exactly these inputs; each is exercised here, with the answer it must get,
so the fixes are verified once merged (these tests fail until then).

- forged page tokens (a cursor past int64, a lone surrogate, deep JSON nesting, a boolean or NUL
  cursor): INVALID_PAGE_TOKEN, not INTERNAL;
- corrupt AcquireLock bytes with --metrics-listen: INVALID_ARGUMENT, not UNKNOWN;
- an expected etag near 8 KiB: its VERSION_MISMATCH, not RESOURCE_EXHAUSTED (trailers overflow);
- blank Lockservice-Fence-* and Idempotency-Key headers: 400, not a write without them;
- an HTTP lock wait past any deadline (wait_timeout_seconds of 1e10): 400, not 504.
"""

from __future__ import annotations

import base64
import json

import grpc
import httpx
import pytest

from lockservice.v1 import lock_pb2, resource_pb2, resource_pb2_grpc
from tests.conftest import free_port
from tests.e2e.support import ServerFactory, expect_failure
from tests.http.support import assert_problem, gateway_client_fixture

http = gateway_client_fixture()
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _forge(token: str, cursor: object) -> str:
    """`token` with its cursor replaced (its query digest kept, so the cursor is read)."""
    data = json.loads(base64.urlsafe_b64decode(token))
    data["c"] = cursor
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _pages(resources: resource_pb2_grpc.ResourceServiceStub, prefix: str) -> tuple[str, str]:
    """A next_page_token of ListResources (key cursor) and of ListResourceVersions (version cursor)."""
    for name in ("a", "b"):
        resources.UpdateResource(
            resource_pb2.UpdateResourceRequest(key=f"{prefix}/{name}", value=b"1", allow_missing=True)
        )
    resources.UpdateResource(resource_pb2.UpdateResourceRequest(key=f"{prefix}/a", value=b"2"))
    keys = resources.ListResources(resource_pb2.ListResourcesRequest(prefix=f"{prefix}/", page_size=1))
    versions = resources.ListResourceVersions(
        resource_pb2.ListResourceVersionsRequest(key=f"{prefix}/a", page_size=1)
    )
    return keys.next_page_token, versions.next_page_token


@pytest.mark.parametrize(
    ("listing", "cursor"),
    [
        ("versions", 2**63),
        ("versions", -(2**63) - 1),
        ("versions", True),
        ("keys", "\ud800"),
        ("keys", "a\u0000b"),
        ("keys", True),
    ],
)
def test_a_forged_page_token_is_invalid_page_token(
    resources: resource_pb2_grpc.ResourceServiceStub, prefix: str, listing: str, cursor: object
) -> None:
    keys_token, versions_token = _pages(resources, prefix)
    if listing == "keys":
        request = resource_pb2.ListResourcesRequest(
            prefix=f"{prefix}/", page_token=_forge(keys_token, cursor)
        )
        expect_failure(resources.ListResources, request, INVALID, "INVALID_PAGE_TOKEN")
    else:
        forged = _forge(versions_token, cursor)
        request_v = resource_pb2.ListResourceVersionsRequest(key=f"{prefix}/a", page_token=forged)
        expect_failure(resources.ListResourceVersions, request_v, INVALID, "INVALID_PAGE_TOKEN")


def test_a_deeply_nested_page_token_is_invalid_page_token(
    resources: resource_pb2_grpc.ResourceServiceStub, prefix: str
) -> None:
    nested = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode()
    request = resource_pb2.ListResourcesRequest(prefix=f"{prefix}/", page_token=nested)
    expect_failure(resources.ListResources, request, INVALID, "INVALID_PAGE_TOKEN")


@pytest.mark.backend_specific("sqlite", reason="the request never reaches the store: it does not parse")
def test_corrupt_acquire_lock_bytes_with_metrics_are_invalid_argument(server_factory: ServerFactory) -> None:
    server = server_factory(["--metrics-listen", f"127.0.0.1:{free_port()}"]).start()
    with grpc.insecure_channel(server.address) as channel:
        acquire: grpc.UnaryUnaryMultiCallable[bytes, lock_pb2.Lock] = channel.unary_unary(
            "/lockservice.v1.LockService/AcquireLock",
            request_serializer=None,
            response_deserializer=lock_pb2.Lock.FromString,
        )
        with pytest.raises(grpc.RpcError) as failed:
            acquire(b"\x0a\xff\xff\xff\xff\x0f", timeout=10)
        assert failed.value.code() == INVALID, failed.value.details()


def test_a_long_expected_etag_gets_its_version_mismatch(
    resources: resource_pb2_grpc.ResourceServiceStub, prefix: str
) -> None:
    key = f"{prefix}/etag"
    resources.CreateResource(resource_pb2.CreateResourceRequest(key=key, value=b"v"))
    for etag in ("e" * 8000, "\u00e9" * 4097):
        update = resource_pb2.UpdateResourceRequest(key=key, value=b"w", expected_etag=etag)
        expect_failure(resources.UpdateResource, update, grpc.StatusCode.ABORTED, "VERSION_MISMATCH")


def test_a_long_if_match_gets_its_409(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/etag"
    assert http.put(path, content=b"v").status_code == 201
    answer = http.put(path, content=b"w", headers={"If-Match": '"' + "e" * 8000 + '"'})
    assert_problem(answer, 409, "VERSION_MISMATCH", code="ABORTED")


@pytest.mark.parametrize(
    "headers",
    [
        {"Idempotency-Key": ""},
        {"Lockservice-Fence-Lock": "", "Lockservice-Fence-Token": ""},
    ],
)
def test_blank_idempotency_and_fence_headers_are_400(
    http: httpx.Client, prefix: str, headers: dict[str, str]
) -> None:
    answer = http.put(f"/v1/resources/{prefix}/blank", content=b"v", headers=headers)
    assert_problem(answer, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT")


def test_an_http_lock_wait_past_any_deadline_is_400(http: httpx.Client, prefix: str) -> None:
    answer = http.post(
        f"/v1/locks/{prefix}/wait:acquire", json={"ttl_seconds": 30, "wait_timeout_seconds": 1e10}
    )
    assert_problem(answer, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT")
