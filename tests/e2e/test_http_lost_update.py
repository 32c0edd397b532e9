"""The article's lost-update scenario over HTTP: two clients read the same version, one writes,
the stale one gets 409 with the current ETag, re-fetches, merges and succeeds."""

from __future__ import annotations

import base64
import json

import httpx

from tests.http.support import assert_problem, gateway_client_fixture

http = gateway_client_fixture()


def test_the_stale_writer_gets_409_with_the_current_etag_then_merges_and_succeeds(
    http: httpx.Client, prefix: str
) -> None:
    path = f"/v1/resources/{prefix}/document"
    json_type = {"Content-Type": "application/json"}
    http.put(
        path, content=json.dumps({"title": "Draft", "tags": []}), headers={"If-None-Match": "*", **json_type}
    )

    # Users A and B both read version 1.
    read_a, read_b = http.get(path), http.get(path)
    assert read_a.headers["etag"] == read_b.headers["etag"]
    seen_by_b = read_b.headers["etag"]

    # A writes first.
    doc_a = {**read_a.json(), "title": "Final"}
    written_a = http.put(
        path, content=json.dumps(doc_a), headers={"If-Match": read_a.headers["etag"], **json_type}
    )
    assert written_a.status_code == 200

    # B's write is based on a stale version: 409, with the current state to resolve it.
    doc_b = {**read_b.json(), "tags": ["urgent"]}
    stale = http.put(path, content=json.dumps(doc_b), headers={"If-Match": seen_by_b, **json_type})
    problem = assert_problem(stale, 409, "VERSION_MISMATCH", code="ABORTED", instance=path)
    assert stale.headers["etag"] == written_a.headers["etag"]
    assert problem["conflict"]["current_version"] == 2
    assert problem["conflict"]["expected"] == f"etag {seen_by_b}"
    # The conflict carries A's document, so B could merge without reading it again.
    assert json.loads(base64.b64decode(problem["conflict"]["current_value_base64"])) == doc_a
    assert problem["conflict"]["current_content_type"] == "application/json"

    # B re-fetches, merges its change into A's, and retries with the current ETag.
    current = http.get(path)
    assert current.headers["etag"] == stale.headers["etag"]
    merged = {**current.json(), "tags": doc_b["tags"]}
    retried = http.put(
        path, content=json.dumps(merged), headers={"If-Match": current.headers["etag"], **json_type}
    )
    assert retried.status_code == 200
    assert retried.json()["version"] == 3

    # Nobody's update was lost.
    assert http.get(path).json() == {"title": "Final", "tags": ["urgent"]}
