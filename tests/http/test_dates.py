"""HTTP dates: parsing the three formats, `Last-Modified` never later than `Date` (RFC 9110
section 8.8.2.1), both to the second, with the adapter's clock injected."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from lockservice.http import HttpOptions, create_app
from lockservice.http.dates import DateHeader, http_date, last_modified, parse_http_date
from lockservice.v1 import resource_pb2

NOV_6_1994 = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT


class _OneResourceChannel:
    """A channel whose every unary call answers `resource` (the adapter only reads here)."""

    def __init__(self, resource: resource_pb2.Resource) -> None:
        self._resource = resource

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> resource_pb2.Resource:
            return self._resource

        return call

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("this test makes no streaming call")

        return call


def get(resource: resource_pb2.Resource, now: float, headers: dict[str, str] | None = None) -> httpx.Response:
    def clock() -> float:
        return now

    channel: Any = _OneResourceChannel(resource)
    app = DateHeader(create_app(channel=channel, options=HttpOptions(clock=clock)), clock)

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://adapter") as client:
            return await client.get("/v1/resources/k", headers=headers or {})

    return asyncio.run(send())


def resource(seconds: int, nanos: int = 0) -> resource_pb2.Resource:
    return resource_pb2.Resource(
        key="k",
        value=b"v",
        content_type="text/plain",
        version=1,
        etag='"1.1"',
        update_time=Timestamp(seconds=seconds, nanos=nanos),
    )


@pytest.mark.parametrize(
    "text",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
)
def test_the_three_http_date_formats_parse_to_the_same_second(text: str) -> None:
    assert parse_http_date(text) == NOV_6_1994
    assert http_date(NOV_6_1994) == "Sun, 06 Nov 1994 08:49:37 GMT"


@pytest.mark.parametrize("text", ["", "yesterday", "Sun, 32 Nov 1994 08:49:37 GMT", "1994-11-06T08:49:37Z"])
def test_an_invalid_date_parses_to_none(text: str) -> None:
    assert parse_http_date(text) is None


def test_last_modified_is_the_update_second_clamped_to_now() -> None:
    assert last_modified(resource(NOV_6_1994, 999_999_999), NOV_6_1994 + 5.0) == NOV_6_1994
    assert last_modified(resource(NOV_6_1994 + 60), NOV_6_1994 + 0.7) == NOV_6_1994
    assert last_modified(resource_pb2.Resource(key="k"), NOV_6_1994) is None


def test_a_resource_stamped_after_the_adapters_clock_is_dated_at_the_date_header() -> None:
    """The store's clock is 30 s ahead of the adapter's: Last-Modified is not in the future."""
    response = get(resource(NOV_6_1994 + 30, 500_000_000), NOV_6_1994 + 0.25)
    assert response.status_code == 200
    assert response.headers.get_list("date") == ["Sun, 06 Nov 1994 08:49:37 GMT"]
    assert response.headers["last-modified"] == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_a_past_write_keeps_its_second_and_304_repeats_the_validators() -> None:
    written = resource(NOV_6_1994 - 10, 900_000_000)
    response = get(written, NOV_6_1994, {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:27 GMT"})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["last-modified"] == "Sun, 06 Nov 1994 08:49:27 GMT"
    assert response.headers["etag"] == '"1.1"'
    assert response.headers.get_list("date") == ["Sun, 06 Nov 1994 08:49:37 GMT"]
    modified = get(written, NOV_6_1994, {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:26 GMT"})
    assert (modified.status_code, modified.content) == (200, b"v")
