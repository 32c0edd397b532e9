"""Per-client quotas on long-lived streams, so one client cannot hold all of the server's.

A client is its authenticated identity, or its address when authentication is off (every
process on one host, or behind one unix socket, shares that host's quota). Streams are counted
while open; a stream that would go over a limit is refused with LIMIT_EXCEEDED.
"""

from __future__ import annotations

from lockservice.errors import LimitExceeded

__all__ = ["StreamQuota"]


class StreamQuota:
    """At most `max_streams` open streams (Watch and KeepAlive) per client, of which at most
    `max_watchers` are watches. Used from one event loop: no locking."""

    def __init__(self, max_streams: int, max_watchers: int) -> None:
        self._max_streams = max_streams
        self._max_watchers = max_watchers
        self._streams: dict[str, int] = {}
        self._watchers: dict[str, int] = {}

    def open(self, client: str, *, watch: bool) -> None:
        """Counts a new stream of `client`; call `close` with the same arguments when it ends."""
        streams = self._streams.get(client, 0)
        if streams >= self._max_streams:
            raise LimitExceeded(
                f"this client already has {streams} open streams, the limit; close one first",
                metadata={"limit": str(self._max_streams), "quota": "streams-per-client"},
            )
        if watch:
            watchers = self._watchers.get(client, 0)
            if watchers >= self._max_watchers:
                raise LimitExceeded(
                    f"this client already has {watchers} open watches, the limit; "
                    "watch a common prefix instead of many keys",
                    metadata={"limit": str(self._max_watchers), "quota": "watchers-per-client"},
                )
            self._watchers[client] = watchers + 1
        self._streams[client] = streams + 1

    def close(self, client: str, *, watch: bool) -> None:
        _decrement(self._streams, client)
        if watch:
            _decrement(self._watchers, client)

    def open_streams(self, client: str) -> int:
        return self._streams.get(client, 0)


def _decrement(counts: dict[str, int], client: str) -> None:
    left = counts.get(client, 0) - 1
    if left > 0:
        counts[client] = left
    else:
        counts.pop(client, None)
