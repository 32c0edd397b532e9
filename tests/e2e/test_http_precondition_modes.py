"""The two precondition options over real HTTP: strict RFC 9110 mode (412 for a failed If-Match
or If-None-Match) and require-preconditions mode (428 for an unconditional write)."""

from __future__ import annotations

import httpx

from tests.http.support import assert_problem, gateway_client_fixture

strict_http = gateway_client_fixture("--http-strict-preconditions")
requiring_http = gateway_client_fixture("--http-require-preconditions")


def test_strict_mode_answers_412_to_failed_preconditions(strict_http: httpx.Client, prefix: str) -> None:
    http = strict_http
    path = f"/v1/resources/{prefix}/strict"
    first = http.put(path, content=b"1", headers={"If-None-Match": "*"}).headers["etag"]
    second = http.put(path, content=b"2", headers={"If-Match": first}).headers["etag"]

    stale = http.put(path, content=b"3", headers={"If-Match": first})
    problem = assert_problem(stale, 412, "VERSION_MISMATCH", code="ABORTED", instance=path)
    assert stale.headers["etag"] == second
    assert problem["conflict"]["current_etag"] == second

    exists = http.put(path, content=b"3", headers={"If-None-Match": "*"})
    assert_problem(exists, 412, "RESOURCE_EXISTS", code="ALREADY_EXISTS", instance=path)
    assert exists.headers["etag"] == second

    stale_delete = http.delete(path, headers={"If-Match": first})
    assert_problem(stale_delete, 412, "VERSION_MISMATCH", code="ABORTED")
    stale_read = http.get(path, headers={"If-Match": first})
    assert_problem(stale_read, 412, "VERSION_MISMATCH", code="ABORTED")

    missing = http.put(f"{path}-missing", content=b"x", headers={"If-Match": first})
    assert_problem(missing, 412, "RESOURCE_NOT_FOUND", code="NOT_FOUND")

    # Conflicts that no precondition header caused keep their 409 / 404.
    unconditional_missing = http.delete(f"{path}-missing")
    assert_problem(unconditional_missing, 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND")
    cas = http.post(f"{path}:compareAndSet", json={"expected_version": 1, "value": "x"})
    assert_problem(cas, 409, "VERSION_MISMATCH", code="ABORTED")


def test_require_mode_answers_428_to_unconditional_writes(requiring_http: httpx.Client, prefix: str) -> None:
    http = requiring_http
    path = f"/v1/resources/{prefix}/guarded"
    put = http.put(path, content=b"x")
    problem = assert_problem(put, 428, "PRECONDITION_REQUIRED", code="FAILED_PRECONDITION", instance=path)
    assert "If-Match" in problem["detail"]
    assert_problem(http.delete(path), 428, "PRECONDITION_REQUIRED", code="FAILED_PRECONDITION")
    assert_problem(http.get(path), 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND")

    created = http.put(path, content=b"x", headers={"If-None-Match": "*"})
    assert created.status_code == 201
    updated = http.put(path, content=b"y", headers={"If-Match": created.headers["etag"]})
    assert updated.status_code == 200
    assert http.put(path, content=b"z", headers={"If-Match": "*"}).status_code == 200
    deleted = http.delete(path, headers={"If-Match": "*"})
    assert deleted.status_code == 200
    assert deleted.json()["resource"]["version"] == 3
