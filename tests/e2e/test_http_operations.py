"""Compare-and-set and transactions as JSON over HTTP, against a real server."""

from __future__ import annotations

import base64

import httpx

from tests.http.support import assert_problem, gateway_client_fixture

http = gateway_client_fixture()


def test_compare_and_set_on_absence_version_etag_and_value(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/counter"
    created = http.post(f"{path}:compareAndSet", json={"expect_absent": True, "value": "0"})
    assert created.status_code == 201
    assert created.headers["location"] == path
    assert created.json()["version"] == 1
    assert created.json()["content_type"] == "application/octet-stream"

    by_version = http.post(f"{path}:compareAndSet", json={"expected_version": 1, "value": "1"})
    assert by_version.status_code == 200
    assert by_version.json()["version"] == 2
    by_etag = http.post(
        f"{path}:compareAndSet", json={"expected_etag": by_version.headers["etag"], "value_base64": "Mg=="}
    )
    assert by_etag.json()["version"] == 3
    by_value = http.post(
        f"{path}:compareAndSet",
        json={"expected_value": "2", "value": "3", "content_type": "text/plain", "request_id": f"{prefix}-v"},
    )
    assert by_value.json()["version"] == 4
    assert http.get(path).content == b"3"

    stale = http.post(f"{path}:compareAndSet", json={"expected_version": 1, "value": "x"})
    problem = assert_problem(stale, 409, "VERSION_MISMATCH", code="ABORTED", instance=f"{path}:compareAndSet")
    assert stale.headers["etag"] == by_value.headers["etag"]
    assert problem["conflict"]["current_version"] == 4

    wrong_value = http.post(
        f"{path}:compareAndSet", json={"expected_value_base64": base64.b64encode(b"9").decode(), "value": "x"}
    )
    problem = assert_problem(wrong_value, 409, "VALUE_MISMATCH", code="ABORTED")
    assert problem["conflict"]["current_version"] == 4
    exists = http.post(f"{path}:compareAndSet", json={"expect_absent": True, "value": "x"})
    assert_problem(exists, 409, "VALUE_MISMATCH", code="ABORTED")


def test_compare_and_set_shape_errors_are_400(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/shape:compareAndSet"
    none = http.post(path, json={"value": "x"})
    assert_problem(none, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT")
    two = http.post(path, json={"expected_version": 1, "expect_absent": True})
    assert_problem(two, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.expect_absent")
    both_values = http.post(path, json={"expect_absent": True, "value": "a", "value_base64": "YQ=="})
    assert_problem(both_values, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.value")
    bad_base64 = http.post(path, json={"expect_absent": True, "value_base64": "not base64!"})
    assert_problem(bad_base64, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.value_base64")
    typo = http.post(path, json={"expected_verison": 1, "value": "x"})
    problem = assert_problem(
        typo, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.expected_verison"
    )
    assert "unknown field" in problem["detail"]
    wrong_type = http.post(path, json={"expected_version": "1", "value": "x"})
    assert_problem(
        wrong_type, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.expected_version"
    )


def test_transaction_applies_everything_or_nothing(http: httpx.Client, prefix: str) -> None:
    a, b = f"{prefix}/tx/a", f"{prefix}/tx/b"
    first = http.post(
        "/v1/resources:transact",
        json={
            "compares": [{"key": a, "absent": True}, {"key": b, "absent": True}],
            "operations": [
                {"put": {"key": a, "value": "1", "content_type": "text/plain"}},
                {"put": {"key": b, "value_base64": "Mg=="}},
            ],
        },
    )
    assert first.status_code == 200
    body = first.json()
    assert [r["resource"]["key"] for r in body["results"]] == [a, b]
    assert [r["deleted"] for r in body["results"]] == [False, False]
    assert {r["resource"]["mod_revision"] for r in body["results"]} == {body["revision"]}

    conflict = http.post(
        "/v1/resources:transact",
        json={
            "compares": [{"key": a, "version": 1}, {"key": b, "value": "nope"}],
            "operations": [{"delete": {"key": a}}, {"put": {"key": b, "value": "3"}}],
        },
    )
    problem = assert_problem(
        conflict, 409, "TRANSACTION_CONFLICT", code="ABORTED", instance="/v1/resources:transact"
    )
    assert problem["conflict"]["compare_index"] == 1
    assert problem["conflict"]["key"] == b
    assert problem["conflict"]["current_version"] == 1
    assert http.get(f"/v1/resources/{a}").content == b"1"
    assert http.get(f"/v1/resources/{b}").content == b"2"

    second = http.post(
        "/v1/resources:transact",
        json={
            "compares": [{"key": a, "etag": body["results"][0]["resource"]["etag"]}],
            "operations": [{"delete": {"key": a}}],
        },
    )
    assert second.status_code == 200
    assert second.json()["results"][0]["deleted"] is True
    assert_problem(http.get(f"/v1/resources/{a}"), 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND")


def test_transaction_shape_errors_are_400(http: httpx.Client, prefix: str) -> None:
    both = http.post(
        "/v1/resources:transact",
        json={"operations": [{"put": {"key": f"{prefix}/x"}, "delete": {"key": f"{prefix}/x"}}]},
    )
    assert_problem(both, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.operations[0].delete")
    not_a_list = http.post("/v1/resources:transact", json={"compares": {"key": "x"}})
    assert_problem(not_a_list, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.compares")
    empty = http.post("/v1/resources:transact", json={})
    assert_problem(empty, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT")
