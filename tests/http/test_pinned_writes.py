"""A condition the service cannot compare in one step (a list of tags, a date, If-None-Match
with tags) is evaluated on the state the adapter reads, and the write it then sends expects
exactly that state: the service's atomic compare refuses it if anything was written between.
In process, over a channel that records what the adapter asks of the service."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from lockservice.http import create_app
from lockservice.v1 import resource_pb2

CURRENT = resource_pb2.Resource(
    key="k", value=b"v", version=3, etag='"5.3"', mod_revision=5, update_time=Timestamp(seconds=784111777)
)
WRITTEN = resource_pb2.Resource(key="k", version=4, etag='"6.4"', mod_revision=6)


class _RecordingChannel:
    """Answers GetResource with CURRENT and every write with WRITTEN, recording each request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Message]] = []

    def unary_unary(self, path: str, *args: Any, **kwargs: Any) -> Any:
        method = path.rsplit("/", 1)[-1]

        async def call(request: Message, *args: Any, **kwargs: Any) -> Message:
            self.calls.append((method, request))
            if method == "GetResource":
                return CURRENT
            if method == "DeleteResource":
                return resource_pb2.DeleteResourceResponse(resource=CURRENT, revision=6)
            return WRITTEN

        return call

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self.unary_unary(*args, **kwargs)


def send(method: str, headers: dict[str, str]) -> tuple[httpx.Response, list[tuple[str, Message]]]:
    channel = _RecordingChannel()
    app = create_app(channel=channel)  # type: ignore[arg-type]

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://adapter") as client:
            return await client.request(method, "/v1/resources/k", content=b"new", headers=headers)

    return asyncio.run(request()), channel.calls


@pytest.mark.parametrize(
    "headers",
    [
        {"If-Match": '"1.1", "5.3"'},
        {"If-Match": 'W/"5.3", "5.3"'},
        {"If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"},
        {"If-None-Match": '"1.1"'},
    ],
)
def test_the_write_expects_the_etag_it_was_evaluated_on(headers: dict[str, str]) -> None:
    put, calls = send("PUT", headers)
    assert put.status_code == 200, put.text
    assert [method for method, _ in calls] == ["GetResource", "UpdateResource"]
    update = calls[1][1]
    assert isinstance(update, resource_pb2.UpdateResourceRequest)
    assert (update.expected_etag, update.allow_missing, update.value) == ('"5.3"', False, b"new")

    deleted, calls = send("DELETE", headers)
    assert deleted.status_code == 200, deleted.text
    delete = calls[1][1]
    assert isinstance(delete, resource_pb2.DeleteResourceRequest)
    assert delete.expected_etag == '"5.3"'


def test_one_strong_tag_goes_to_the_service_without_a_read() -> None:
    put, calls = send("PUT", {"If-Match": '"5.3"'})
    assert put.status_code == 200, put.text
    assert [method for method, _ in calls] == ["UpdateResource"]


def test_a_false_condition_sends_no_write() -> None:
    put, calls = send("PUT", {"If-Match": '"1.1", W/"5.3"'})
    assert put.status_code == 409
    assert put.json()["reason"] == "VERSION_MISMATCH"
    assert [method for method, _ in calls] == ["GetResource"]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_an_idempotency_key_needs_a_condition_the_service_compares(method: str) -> None:
    """A retry would be evaluated on the state its first attempt wrote and pinned to another
    etag, so it could not be answered as the first attempt was: refused, naming the header."""
    refused, calls = send(method, {"If-Match": '"1.1", "5.3"', "Idempotency-Key": "retry-1"})
    assert refused.status_code == 400
    body = refused.json()
    assert (body["reason"], body["metadata"]) == ("INVALID_ARGUMENT", {"field": "Idempotency-Key"})
    assert calls == []
    accepted, calls = send(method, {"If-Match": '"5.3"', "Idempotency-Key": "retry-1"})
    assert accepted.status_code == 200, accepted.text
    assert [call for call, _ in calls] == [f"{method.title()}Resource".replace("Put", "Update")]
