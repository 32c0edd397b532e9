"""Every row of DESIGN's error table from a real request over HTTP, and bad input of every kind
answered with a clear 4xx problem+json (never a 500, never a traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import closed_port
from tests.http.support import GatewayProcess, assert_problem, gateway_client_fixture

http = gateway_client_fixture()
roomy_http = gateway_client_fixture("--http-max-value-bytes", str(4 * 1024 * 1024))


@pytest.fixture
def unreachable(tmp_path: Path) -> Iterator[httpx.Client]:
    """A gateway whose gRPC target has nothing listening."""
    with closed_port() as port:
        process = GatewayProcess(f"127.0.0.1:{port}", tmp_path / "gateway.log").wait_ready()
        try:
            with httpx.Client(base_url=process.base_url, timeout=30.0) as client:
                yield client
        finally:
            process.stop()


def test_every_conflict_row_is_409(http: httpx.Client, prefix: str) -> None:
    key = f"/v1/resources/{prefix}/k"
    etag = http.put(key, content=b"1", headers={"If-None-Match": "*"}).headers["etag"]
    http.put(key, content=b"2", headers={"If-Match": etag})
    lock = http.post(f"/v1/locks/{prefix}/l:acquire", json={"ttl_seconds": 30, "holder": "h"}).json()
    fence = {"Lockservice-Fence-Lock": f"{prefix}/l", "Lockservice-Fence-Token": str(lock["token"] + 1)}
    rows = [
        (http.put(key, content=b"x", headers={"If-None-Match": "*"}), "RESOURCE_EXISTS", "ALREADY_EXISTS"),
        (http.put(key, content=b"x", headers={"If-Match": etag}), "VERSION_MISMATCH", "ABORTED"),
        (
            http.post(f"{key}:compareAndSet", json={"expected_value": "9", "value": "x"}),
            "VALUE_MISMATCH",
            "ABORTED",
        ),
        (
            http.post(
                "/v1/resources:transact",
                json={
                    "compares": [{"key": f"{prefix}/k", "version": 1}],
                    "operations": [{"delete": {"key": f"{prefix}/k"}}],
                },
            ),
            "TRANSACTION_CONFLICT",
            "ABORTED",
        ),
        (http.post(f"/v1/locks/{prefix}/l:acquire", json={"ttl_seconds": 30}), "LOCK_HELD", "ABORTED"),
        (
            http.post(f"/v1/locks/{prefix}/l:release", json={"token": lock["token"] + 1}),
            "LOCK_NOT_HELD",
            "ABORTED",
        ),
        (http.put(key, content=b"x", headers=fence), "STALE_FENCE", "ABORTED"),
    ]
    for response, reason, code in rows:
        problem = assert_problem(response, 409, reason, code=code)
        assert problem["conflict"]["revision"] > 0


def test_every_missing_and_invalid_row(http: httpx.Client, roomy_http: httpx.Client, prefix: str) -> None:
    assert_problem(http.get(f"/v1/resources/{prefix}/none"), 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND")
    assert_problem(http.get(f"/v1/leases/{'0' * 32}"), 404, "LEASE_NOT_FOUND", code="NOT_FOUND")
    assert_problem(http.get(f"/v1/locks/{prefix}/none"), 404, "LOCK_NOT_FOUND", code="NOT_FOUND")
    assert_problem(
        http.put(f"/v1/resources/{prefix}/a//b", content=b"x"), 400, "INVALID_KEY", code="INVALID_ARGUMENT"
    )
    assert_problem(
        http.post("/v1/leases", json={"ttl_seconds": -1}), 400, "INVALID_TTL", code="INVALID_ARGUMENT"
    )
    long_id = {"Idempotency-Key": "i" * 129}
    invalid_id = http.put(f"/v1/resources/{prefix}/r", content=b"x", headers=long_id)
    assert_problem(invalid_id, 400, "INVALID_REQUEST_ID", code="INVALID_ARGUMENT")
    once = {"Idempotency-Key": f"{prefix}-once"}
    http.put(f"/v1/resources/{prefix}/r", content=b"x", headers=once)
    reused = http.put(f"/v1/resources/{prefix}/r", content=b"y", headers=once)
    assert_problem(reused, 400, "REQUEST_ID_REUSED", code="INVALID_ARGUMENT")
    # Past the server's value limit but within this gateway's body limit: the service's own 400.
    too_large = roomy_http.put(f"/v1/resources/{prefix}/big", content=b"x" * (2 * 1024 * 1024))
    assert_problem(too_large, 400, "VALUE_TOO_LARGE", code="INVALID_ARGUMENT")


def test_an_unreachable_backend_is_503_with_a_generic_detail(unreachable: httpx.Client) -> None:
    response = unreachable.get("/v1/resources/some/key")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "the lockservice backend is unavailable; retry later",
        "instance": "/v1/resources/some/key",
        "code": "UNAVAILABLE",
    }
    assert unreachable.get("/healthz").json() == {"status": "ok"}
    ready = unreachable.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["code"] == "UNAVAILABLE"


def test_bad_json_bodies_are_400_or_415(http: httpx.Client, prefix: str) -> None:
    url = "/v1/leases"
    json_type = {"Content-Type": "application/json"}
    cases = [
        (b'{"ttl_seconds": 30', "body"),
        (b"\xff\xfe not utf-8", "body"),
        (b"[1, 2]", "body"),
        (b"[" * 100_000 + b"]" * 100_000, "body"),
        (b'{"ttl_seconds": 1e999}', "body.ttl_seconds"),
        (b'{"ttl_seconds": 99999999999999999999999}', "body.ttl_seconds"),
        (b'{"ttl_seconds": true}', "body.ttl_seconds"),
        (b'{"holder": "\\ud800"}', "body.holder"),
        (b'{"holder": 5}', "body.holder"),
        (b'{"extra": 1}', "body.extra"),
    ]
    for body, field in cases:
        response = http.post(url, content=body, headers=json_type)
        assert_problem(response, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field=field)
    lock = f"/v1/locks/{prefix}/j:acquire"
    nan = http.post(lock, content=b'{"ttl_seconds": 5, "wait_timeout_seconds": NaN}', headers=json_type)
    assert_problem(nan, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.wait_timeout_seconds")
    form = http.post(
        url, content=b"ttl_seconds=30", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_problem(form, 415, "UNSUPPORTED_MEDIA_TYPE", code="INVALID_ARGUMENT", field="Content-Type")
    huge = http.post("/v1/resources:transact", content=b" " * (8 * 1024 * 1024 + 1), headers=json_type)
    assert_problem(huge, 413, "BODY_TOO_LARGE", code="INVALID_ARGUMENT")


def test_bad_headers_and_query_parameters_are_400(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/h"
    cases = [
        (http.put(path, content=b"x", headers={"If-Match": "not-quoted"}), "If-Match"),
        (http.put(path, content=b"x", headers={"If-Match": '"a", junk'}), "If-Match"),
        (http.put(path, content=b"x", headers={"If-Match": "W/a"}), "If-Match"),
        (http.put(path, content=b"x", headers={"If-Match": '"' + "1" * 8000 + '"'}), "If-Match"),
        (http.put(path, content=b"x", headers={"If-None-Match": "a"}), "If-None-Match"),
        (
            http.put(path, content=b"x", headers={"If-Match": "*", "If-None-Match": '"a" "b"'}),
            "If-None-Match",
        ),
        (http.delete(path, headers={"If-None-Match": "*, *"}), "If-None-Match"),
        (http.get(path, headers={"If-None-Match": ""}), "If-None-Match"),
        (
            http.put(
                path, content=b"x", headers={"Lockservice-Fence-Lock": "l", "Lockservice-Fence-Token": "-1"}
            ),
            "Lockservice-Fence-Token",
        ),
        (http.put(path, content=b"x", headers={b"Idempotency-Key": b"caf\xe9"}), "Idempotency-Key"),
        (http.get(path, params={"version": "abc"}), "version"),
        (http.get(path, params={"version": str(2**63)}), "version"),
        (http.get("/v1/resources", params={"page_size": str(2**31)}), "page_size"),
        (http.get("/v1/resources", params={"page_size": ""}), "page_size"),
        (http.get(path, params={"version": ""}), "version"),
        (http.get("/v1/resources", params={"view": "everything"}), "view"),
    ]
    for response, field in cases:
        assert_problem(response, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field=field)


def test_wrong_methods_and_unknown_routes(http: httpx.Client, prefix: str) -> None:
    wrong = http.patch(f"/v1/resources/{prefix}/x", content=b"x")
    problem = assert_problem(wrong, 405, "METHOD_NOT_ALLOWED", code="UNIMPLEMENTED")
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}
    assert problem["metadata"]["allow"] == wrong.headers["allow"]
    assert_problem(http.delete("/v1/resources"), 405, "METHOD_NOT_ALLOWED", code="UNIMPLEMENTED")
    assert_problem(http.get(f"/v1/locks/{prefix}/x%3Aacquire"), 404, "LOCK_NOT_FOUND", code="NOT_FOUND")
    acquire_by_get = http.get(f"/v1/locks/{prefix}/x:acquire")
    assert_problem(acquire_by_get, 405, "METHOD_NOT_ALLOWED", code="UNIMPLEMENTED")
    assert acquire_by_get.headers["allow"] == "POST"
    unknown = http.get("/v2/anything")
    assert_problem(unknown, 404, "ROUTE_NOT_FOUND", code="NOT_FOUND", instance="/v2/anything")


def test_blank_lockservice_headers_are_400_not_absent(http: httpx.Client, prefix: str) -> None:
    """Issue #14 item 5: a blank `Idempotency-Key` or fence header silently meant "no key" or
    "no fence"; a header that is sent must say something."""
    path = f"/v1/resources/{prefix}/blank"
    fence = {"Lockservice-Fence-Lock": f"{prefix}/l", "Lockservice-Fence-Token": "1"}
    cases = [
        ({"Idempotency-Key": ""}, "Idempotency-Key"),
        ({**fence, "Lockservice-Fence-Lock": ""}, "Lockservice-Fence-Lock"),
        ({**fence, "Lockservice-Fence-Token": ""}, "Lockservice-Fence-Token"),
        ({"Lockservice-Fence-Lock": "", "Lockservice-Fence-Token": ""}, "Lockservice-Fence-Lock"),
    ]
    for headers, field in cases:
        for response in (
            http.put(path, content=b"x", headers=headers),
            http.delete(path, headers=headers),
        ):
            problem = assert_problem(response, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field=field)
            assert "empty" in problem["detail"]
    blank_lease = http.put(path, content=b"x", headers={"Lockservice-Lease-Id": ""})
    assert_problem(
        blank_lease, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="Lockservice-Lease-Id"
    )
    # Nothing was written by any of them.
    assert http.get(path).status_code == 404
