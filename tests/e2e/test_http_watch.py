"""Watch as Server-Sent Events over real HTTP: replay, live changes, resume by Last-Event-ID,
errors as problem+json."""

from __future__ import annotations

import base64
import json

import httpx

from tests.http.support import SseReader, assert_problem, gateway_client_fixture

http = gateway_client_fixture()


def test_replay_then_live_changes_with_resumable_ids(http: httpx.Client, prefix: str) -> None:
    created = http.put(
        f"/v1/resources/{prefix}/w/a", content=b"1", headers={"Content-Type": "text/plain"}
    ).json()
    start = created["mod_revision"]
    http.put(f"/v1/resources/{prefix}/w/a", content=b"2")
    params = {"key": f"{prefix}/w/", "prefix": "true", "start_revision": str(start)}
    with http.stream("GET", "/v1/resources:watch", params=params) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        events = SseReader(stream)
        opened, first, second = events.next(3)
        assert json.loads(opened["data"])["events"] == []
        assert opened["id"] == str(start - 1)
        put = json.loads(first["data"])
        assert first["id"] == str(put["revision"]) == str(start)
        assert [(e["type"], e["resource"]["key"], e["resource"]["version"]) for e in put["events"]] == [
            ("PUT", f"{prefix}/w/a", 1)
        ]
        assert base64.b64decode(put["events"][0]["resource"]["value_base64"]) == b"1"
        assert put["events"][0]["resource"]["content_type"] == "text/plain"
        assert [e["resource"]["version"] for e in json.loads(second["data"])["events"]] == [2]

        deleted = http.delete(f"/v1/resources/{prefix}/w/a").json()
        (live,) = events.next(1)
        event = json.loads(live["data"])["events"][0]
        assert (event["type"], event["revision"]) == ("DELETE", deleted["revision"])
        assert live["id"] == str(deleted["revision"])

    # A reconnecting EventSource sends Last-Event-ID and resumes after it.
    resume = {"key": f"{prefix}/w/", "prefix": "true"}
    with http.stream(
        "GET", "/v1/resources:watch", params=resume, headers={"Last-Event-ID": second["id"]}
    ) as again:
        _, replayed = SseReader(again).next(2)
        assert json.loads(replayed["data"])["events"][0]["type"] == "DELETE"


def test_a_watch_from_now_opens_at_the_current_revision(http: httpx.Client, prefix: str) -> None:
    key = f"{prefix}/now"
    with http.stream("GET", "/v1/resources:watch", params={"key": key}) as stream:
        events = SseReader(stream)
        (opened,) = events.next(1)
        revision = json.loads(opened["data"])["revision"]
        assert opened["id"] == str(revision)
        written = http.put(f"/v1/resources/{key}", content=b"x").json()
        (change,) = events.next(1)
        assert json.loads(change["data"])["events"][0]["resource"]["mod_revision"] == written["mod_revision"]
        assert int(change["id"]) == written["mod_revision"] > revision


def test_watch_errors_are_problem_json_before_the_stream_starts(http: httpx.Client, prefix: str) -> None:
    bad_key = http.get("/v1/resources:watch", params={"key": f"{prefix}//x"})
    assert_problem(bad_key, 400, "INVALID_KEY", code="INVALID_ARGUMENT", instance="/v1/resources:watch")
    negative = http.get("/v1/resources:watch", params={"key": f"{prefix}/x", "start_revision": "-1"})
    assert_problem(negative, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="start_revision")
    bad_id = http.get("/v1/resources:watch", params={"key": f"{prefix}/x"}, headers={"Last-Event-ID": "abc"})
    assert_problem(bad_id, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="Last-Event-ID")
    bad_flag = http.get("/v1/resources:watch", params={"key": f"{prefix}/x", "prefix": "maybe"})
    assert_problem(bad_flag, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="prefix")
