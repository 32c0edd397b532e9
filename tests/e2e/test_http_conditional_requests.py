"""RFC 9110 conditional requests through the gateway, against a real server: entity-tag lists
and weak tags in If-Match and If-None-Match, If-Unmodified-Since and If-Modified-Since against
`Last-Modified`, and `Last-Modified` never later than `Date`."""

from __future__ import annotations

from email.utils import formatdate, parsedate_to_datetime

import httpx

from tests.http.support import assert_problem, gateway_client_fixture

http = gateway_client_fixture()
strict_http = gateway_client_fixture("--http-strict-preconditions")


def _created(http: httpx.Client, path: str, value: bytes = b"1") -> httpx.Response:
    created = http.put(path, content=value, headers={"If-None-Match": "*"})
    assert created.status_code == 201, created.text
    return created


def _second_before(http_date: str) -> str:
    return formatdate(parsedate_to_datetime(http_date).timestamp() - 1, usegmt=True)


def test_if_match_takes_a_list_of_tags_and_compares_strongly(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/listed"
    first = _created(http, path).headers["etag"]

    updated = http.put(path, content=b"2", headers={"If-Match": f'"0.0", {first}'})
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    second = updated.headers["etag"]

    stale = http.put(path, content=b"3", headers={"If-Match": f'"0.0", {first}'})
    problem = assert_problem(stale, 409, "VERSION_MISMATCH", code="ABORTED", instance=path)
    assert stale.headers["etag"] == second
    assert problem["conflict"]["current_etag"] == second
    assert problem["conflict"]["current_version"] == 2
    assert problem["conflict"]["expected"] == f'etag "0.0", {first}'

    weak = http.put(path, content=b"3", headers={"If-Match": f"W/{second}"})
    problem = assert_problem(weak, 409, "VERSION_MISMATCH", code="ABORTED", instance=path)
    assert problem["conflict"]["expected"] == f"etag W/{second}"
    assert http.get(path, headers={"If-Match": f"W/{second}"}).status_code == 409

    deleted = http.delete(path, headers={"If-Match": f'W/{second}, "9.9", {second}'})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["resource"]["version"] == 2

    missing = http.put(path, content=b"x", headers={"If-Match": f'"0.0", {second}'})
    assert_problem(missing, 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND", instance=path)
    malformed = http.put(path, content=b"x", headers={"If-Match": f"{second} junk"})
    assert_problem(malformed, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="If-Match")


def test_if_none_match_with_tags_guards_writes(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/unless"
    created = http.put(path, content=b"1", headers={"If-None-Match": '"0.0"'})
    assert created.status_code == 201, created.text  # no current representation: none matches
    etag = created.headers["etag"]

    named = http.put(path, content=b"2", headers={"If-None-Match": f'"0.0", W/{etag}'})
    problem = assert_problem(named, 409, "RESOURCE_EXISTS", code="ALREADY_EXISTS", instance=path)
    assert named.headers["etag"] == etag
    assert problem["conflict"]["expected"] == f'none of "0.0", W/{etag}'

    other = http.put(path, content=b"2", headers={"If-None-Match": '"0.0"'})
    assert other.status_code == 200, other.text
    assert other.json()["version"] == 2

    exists = http.delete(path, headers={"If-None-Match": "*"})
    assert_problem(exists, 409, "RESOURCE_EXISTS", code="ALREADY_EXISTS", instance=path)
    assert http.delete(path, headers={"If-None-Match": f"{etag}"}).status_code == 200
    assert_problem(
        http.delete(path, headers={"If-None-Match": "*"}), 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND"
    )


def test_if_modified_since_answers_304_with_the_validators(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/dated"
    created = _created(http, path, b"same")
    modified = created.headers["last-modified"]

    not_modified = http.get(path, headers={"If-Modified-Since": modified})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == created.headers["etag"]
    assert not_modified.headers["last-modified"] == modified

    older = http.get(path, headers={"If-Modified-Since": _second_before(modified)})
    assert (older.status_code, older.content) == (200, b"same")
    assert http.get(path, headers={"If-Modified-Since": "not a date"}).status_code == 200
    # If-None-Match decides when present: a changed etag is sent whatever the date says.
    assert (
        http.get(path, headers={"If-None-Match": '"0.0"', "If-Modified-Since": modified}).status_code == 200
    )
    assert http.head(path, headers={"If-Modified-Since": modified}).status_code == 304


def test_if_unmodified_since_guards_reads_and_writes(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/unmodified"
    created = _created(http, path)
    modified = created.headers["last-modified"]
    before = _second_before(modified)

    stale = http.put(path, content=b"2", headers={"If-Unmodified-Since": before})
    problem = assert_problem(stale, 409, "VERSION_MISMATCH", code="ABORTED", instance=path)
    assert problem["conflict"]["expected"] == f"unmodified since {before}"
    assert problem["conflict"]["current_version"] == 1
    assert_problem(
        http.get(path, headers={"If-Unmodified-Since": before}), 409, "VERSION_MISMATCH", code="ABORTED"
    )

    # If-Match decides when present: the stale date is not evaluated.
    matched = http.put(
        path, content=b"2", headers={"If-Match": created.headers["etag"], "If-Unmodified-Since": before}
    )
    assert matched.status_code == 200, matched.text
    ignored = http.put(path, content=b"3", headers={"If-Unmodified-Since": "yesterday"})
    assert ignored.status_code == 200, ignored.text
    later = http.put(path, content=b"4", headers={"If-Unmodified-Since": ignored.headers["last-modified"]})
    assert later.status_code == 200, later.text
    assert later.json()["version"] == 4

    absent = http.put(f"{path}-new", content=b"1", headers={"If-Unmodified-Since": modified})
    assert absent.status_code == 201, absent.text


def test_last_modified_is_never_later_than_date(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/resources/{prefix}/stamped"
    for response in (_created(http, path), http.get(path), http.put(path, content=b"2")):
        assert len(response.headers.get_list("date")) == 1
        date = parsedate_to_datetime(response.headers["date"])
        assert parsedate_to_datetime(response.headers["last-modified"]) <= date


def test_strict_mode_answers_412_to_each_false_condition(strict_http: httpx.Client, prefix: str) -> None:
    http = strict_http
    path = f"/v1/resources/{prefix}/strict"
    created = _created(http, path)
    etag, modified = created.headers["etag"], created.headers["last-modified"]

    weak = http.put(path, content=b"2", headers={"If-Match": f"W/{etag}"})
    assert_problem(weak, 412, "VERSION_MISMATCH", code="ABORTED", instance=path)
    assert weak.headers["etag"] == etag
    listed = http.delete(path, headers={"If-Match": '"0.0", "9.9"'})
    assert_problem(listed, 412, "VERSION_MISMATCH", code="ABORTED", instance=path)
    unmodified = http.put(path, content=b"2", headers={"If-Unmodified-Since": _second_before(modified)})
    assert_problem(unmodified, 412, "VERSION_MISMATCH", code="ABORTED", instance=path)
    named = http.put(path, content=b"2", headers={"If-None-Match": f'"0.0", {etag}'})
    assert_problem(named, 412, "RESOURCE_EXISTS", code="ALREADY_EXISTS", instance=path)
    assert http.get(path, headers={"If-None-Match": f"W/{etag}"}).status_code == 304
