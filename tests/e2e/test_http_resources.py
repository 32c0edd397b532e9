"""Resources as plain HTTP through the gateway, against a real server: raw values with their
validators, conditional writes, listing, history, idempotent retries."""

from __future__ import annotations

import base64
from email.utils import parsedate_to_datetime

import httpx

from tests.http.support import assert_problem, gateway_client_fixture

http = gateway_client_fixture()


def _etag(created: httpx.Response) -> str:
    etag: str = created.headers["etag"]
    return etag


def test_put_if_none_match_creates_and_get_returns_the_raw_value(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/orders/42"
    created = http.put(
        path, content=b'{"qty": 1}', headers={"If-None-Match": "*", "Content-Type": "application/json"}
    )
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json"
    assert created.headers["location"] == path
    assert created.headers["lockservice-version"] == "1"
    body = created.json()
    assert body["key"] == f"{prefix}/orders/42"
    assert body["version"] == 1
    assert body["content_type"] == "application/json"
    assert body["create_revision"] == body["mod_revision"]
    assert body["etag"] == f'"{body["create_revision"]}.1"'
    assert created.headers["etag"] == body["etag"]
    assert created.headers["lockservice-mod-revision"] == str(body["mod_revision"])
    assert body["create_time"] == body["update_time"]
    assert body["lease_id"] == ""
    assert "value_base64" not in body

    read = http.get(path)
    assert read.status_code == 200
    assert read.content == b'{"qty": 1}'
    assert read.headers["content-type"] == "application/json"
    assert read.headers["etag"] == body["etag"]
    assert read.headers["lockservice-version"] == "1"
    modified = parsedate_to_datetime(read.headers["last-modified"])
    assert modified.isoformat().startswith(body["update_time"][:19])

    head = http.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == body["etag"]


def test_put_without_content_type_stores_octet_stream(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/blob"
    assert http.put(path, content=b"\x00\x01", headers={"If-None-Match": "*"}).status_code == 201
    read = http.get(path)
    assert read.content == b"\x00\x01"
    assert read.headers["content-type"] == "application/octet-stream"


def test_if_match_updates_only_the_current_etag(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/doc"
    first = _etag(http.put(path, content=b"v1", headers={"If-None-Match": "*"}))
    updated = http.put(path, content=b"v2", headers={"If-Match": first})
    assert updated.status_code == 200
    assert updated.json()["version"] == 2
    assert "location" not in updated.headers

    stale = http.put(path, content=b"v3", headers={"If-Match": first})
    problem = assert_problem(stale, 409, "VERSION_MISMATCH", code="ABORTED", instance=path)
    assert stale.headers["etag"] == updated.headers["etag"]
    conflict = problem["conflict"]
    assert conflict["key"] == f"{prefix}/doc"
    assert conflict["exists"] is True
    assert conflict["current_version"] == 2
    assert conflict["current_etag"] == updated.headers["etag"]
    assert conflict["current_mod_revision"] == updated.json()["mod_revision"]
    assert conflict["current_update_time"] == updated.json()["update_time"]
    assert conflict["expected"] == f"etag {first}"
    assert problem["metadata"]["key"] == f"{prefix}/doc"
    assert http.get(path).content == b"v2"


def test_create_on_an_existing_key_is_409_resource_exists(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/once"
    etag = _etag(http.put(path, content=b"a", headers={"If-None-Match": "*"}))
    again = http.put(path, content=b"b", headers={"If-None-Match": "*"})
    problem = assert_problem(again, 409, "RESOURCE_EXISTS", code="ALREADY_EXISTS", instance=path)
    assert again.headers["etag"] == etag
    assert problem["conflict"]["current_version"] == 1
    assert problem["conflict"]["current_etag"] == etag


def test_if_match_star_needs_an_existing_key_and_no_header_upserts(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/upsert"
    missing = http.put(path, content=b"x", headers={"If-Match": "*"})
    assert_problem(missing, 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND", instance=path)

    created = http.put(path, content=b"1")
    assert created.status_code == 201
    assert created.json()["version"] == 1
    updated = http.put(path, content=b"2", headers={"If-Match": "*"})
    assert updated.status_code == 200
    assert updated.json()["version"] == 2
    again = http.put(path, content=b"3")
    assert again.status_code == 200
    assert again.json()["version"] == 3


def test_conditional_get_answers_304_and_a_stale_if_match_409(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/cached"
    etag = _etag(http.put(path, content=b"same", headers={"If-None-Match": "*"}))
    not_modified = http.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert http.get(path, headers={"If-None-Match": '"0.0", W/' + etag}).status_code == 304
    assert http.get(path, headers={"If-None-Match": '"0.0"'}).status_code == 200

    assert http.get(path, headers={"If-Match": etag}).status_code == 200
    stale = http.get(path, headers={"If-Match": '"0.0"'})
    problem = assert_problem(stale, 409, "VERSION_MISMATCH", code="ABORTED", instance=path)
    assert stale.headers["etag"] == etag
    assert problem["conflict"]["current_etag"] == etag


def test_delete_with_if_match(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/gone"
    first = _etag(http.put(path, content=b"1", headers={"If-None-Match": "*"}))
    second = _etag(http.put(path, content=b"2", headers={"If-Match": first}))

    stale = http.delete(path, headers={"If-Match": first})
    assert_problem(stale, 409, "VERSION_MISMATCH", code="ABORTED", instance=path)
    assert stale.headers["etag"] == second

    deleted = http.delete(path, headers={"If-Match": second})
    assert deleted.status_code == 200
    body = deleted.json()
    assert body["resource"]["etag"] == second
    assert body["resource"]["version"] == 2
    assert body["revision"] > body["resource"]["mod_revision"]

    assert_problem(http.get(path), 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND", instance=path)
    assert_problem(http.delete(path), 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND", instance=path)


def test_history_by_version_and_versions_listing(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/hist"
    etag = _etag(http.put(path, content=b"one", headers={"If-None-Match": "*", "Content-Type": "text/plain"}))
    http.put(path, content=b"two", headers={"If-Match": etag})

    old = http.get(path, params={"version": 1})
    assert old.status_code == 200
    assert old.content == b"one"
    assert old.headers["lockservice-version"] == "1"
    assert old.headers["content-type"] == "text/plain"

    missing = http.get(path, params={"version": 9})
    problem = assert_problem(missing, 404, "VERSION_NOT_FOUND", code="NOT_FOUND")
    assert problem["conflict"]["current_version"] == 2

    page = http.get(f"{path}/versions", params={"page_size": 1})
    assert page.status_code == 200
    first = page.json()
    assert [v["version"] for v in first["versions"]] == [2]
    assert first["next_page_token"]
    rest = http.get(
        f"{path}/versions", params={"page_token": first["next_page_token"], "view": "full"}
    ).json()
    assert [v["version"] for v in rest["versions"]] == [1]
    assert base64.b64decode(rest["versions"][0]["value_base64"]) == b"one"
    assert rest["next_page_token"] == ""


def test_a_key_ending_in_versions_is_read_with_an_encoded_slash(http: httpx.Client, prefix: str) -> None:
    assert http.put(f"/v1/resources/{prefix}/docs%2Fversions", content=b"k").status_code == 201
    put_to_listing = http.put(f"/v1/resources/{prefix}/docs/versions", content=b"k")
    assert_problem(put_to_listing, 405, "METHOD_NOT_ALLOWED", code="UNIMPLEMENTED")
    assert put_to_listing.headers["allow"] == "GET, HEAD"
    assert http.put(f"/v1/resources/{prefix}/docs", content=b"d").status_code == 201
    listing = http.get(f"/v1/resources/{prefix}/docs/versions")
    assert [v["key"] for v in listing.json()["versions"]] == [f"{prefix}/docs"]
    raw = http.get(f"/v1/resources/{prefix}/docs%2Fversions")
    assert raw.status_code == 200
    assert raw.content == b"k"


def test_list_by_prefix_with_pages_and_values(http: httpx.Client, prefix: str) -> None:
    for name in ("a", "b", "c"):
        http.put(f"/v1/resources/{prefix}/list/{name}", content=name.encode(), headers={"If-None-Match": "*"})
    http.put(f"/v1/resources/{prefix}/listx", content=b"other")

    first = http.get("/v1/resources", params={"prefix": f"{prefix}/list/", "page_size": 2})
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    page = first.json()
    assert [r["key"] for r in page["resources"]] == [f"{prefix}/list/a", f"{prefix}/list/b"]
    assert all("value_base64" not in r for r in page["resources"])
    assert page["revision"] >= max(r["mod_revision"] for r in page["resources"])
    second = http.get(
        "/v1/resources",
        params={"prefix": f"{prefix}/list/", "page_token": page["next_page_token"], "view": "full"},
    ).json()
    assert [(r["key"], r["value_base64"]) for r in second["resources"]] == [(f"{prefix}/list/c", "Yw==")]
    assert second["next_page_token"] == ""

    bad_token = http.get("/v1/resources", params={"prefix": f"{prefix}/list/", "page_token": "nope"})
    assert_problem(bad_token, 400, "INVALID_PAGE_TOKEN", code="INVALID_ARGUMENT")


def test_idempotency_key_retries_return_the_first_answer(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/retry"
    headers = {"If-None-Match": "*", "Idempotency-Key": f"{prefix}-create"}
    first = http.put(path, content=b"v", headers=headers)
    retry = http.put(path, content=b"v", headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()

    reused = http.put(path, content=b"different", headers=headers)
    assert_problem(reused, 400, "REQUEST_ID_REUSED", code="INVALID_ARGUMENT")


def test_bad_keys_and_oversized_values_are_4xx(http: httpx.Client, prefix: str) -> None:
    bad_key = http.put(f"/v1/resources/{prefix}/a//b", content=b"x")
    assert_problem(bad_key, 400, "INVALID_KEY", code="INVALID_ARGUMENT")
    bad_chars = http.get(f"/v1/resources/{prefix}/st*r")
    assert_problem(bad_chars, 400, "INVALID_KEY", code="INVALID_ARGUMENT")

    too_big = http.put(f"/v1/resources/{prefix}/big", content=b"x" * (1024 * 1024 + 1))
    problem = assert_problem(too_big, 413, "BODY_TOO_LARGE", code="INVALID_ARGUMENT")
    assert problem["metadata"] == {"limit_bytes": str(1024 * 1024)}
    assert http.put(f"/v1/resources/{prefix}/big", content=b"x" * (1024 * 1024)).status_code == 201
