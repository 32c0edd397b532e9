"""HTTP dates at one-second resolution: `Date`, `Last-Modified`, and the dates conditional
requests carry (RFC 9110 section 5.6.7).

`Last-Modified` is never later than the message's `Date` (RFC 9110 section 8.8.2.1): the
adapter clamps a resource's update time to its own clock, so a store clock ahead of the
adapter's (another machine, or the sub-second part of a fresh write) cannot date a
representation in the future. `DateHeader` stamps `Date` from the same clock as each response
starts, after the route read that clock, so the two never disagree; uvicorn's own `Date` is a
value refreshed once a second, which can be up to a second older than the response.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockservice.v1 import resource_pb2

__all__ = ["DateHeader", "http_date", "last_modified", "parse_http_date"]

Clock = Callable[[], float]


def http_date(seconds: int) -> str:
    """`seconds` since the epoch as an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`."""
    return formatdate(seconds, usegmt=True)


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch of an HTTP-date in any of its three formats (IMF-fixdate, the
    obsolete RFC 850 and asctime forms); None when `value` is not one, which the conditional
    headers then ignore (RFC 9110 sections 13.1.3 and 13.1.4)."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # asctime carries no zone: HTTP dates are GMT
        return math.floor(parsed.replace(tzinfo=UTC).timestamp())
    return math.floor(parsed.timestamp())


def last_modified(resource: resource_pb2.Resource, now: float) -> int | None:
    """The whole second `Last-Modified` states for `resource`: its update time, truncated,
    and never later than `now`; None for a resource without an update time."""
    if not resource.HasField("update_time"):
        return None
    return min(resource.update_time.seconds, math.floor(now))


class DateHeader:
    """ASGI middleware: every HTTP response carries `Date` from `clock`, read when the response
    starts (a route's `Last-Modified`, clamped to the same clock earlier, is never later).
    For a server whose own `Date` is off (uvicorn's `date_header=False`)."""

    def __init__(self, app: ASGIApp, clock: Clock) -> None:
        self._app = app
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"date" for name, _ in headers):
                    headers.append((b"date", http_date(math.floor(self._clock())).encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, send_dated)
