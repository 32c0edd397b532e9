"""Watch: replay retained changes from a revision, then follow live commits, in revision order.

Every watcher registers with the hub before it reads the store, so nothing committed in between
is missed; what arrives twice (in the replay and live) is dropped by revision. A watcher whose
consumer falls `watch_queue_size` responses behind is cut off with LIMIT_EXCEEDED instead of
buffering without bound; it can resume from the last revision it saw.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.validation import check_key, check_prefix
from lockservice.errors import InvalidArgument, LimitExceeded, RevisionCompacted, ShuttingDown
from lockservice.model import ChangeEvent, WatchBatch
from lockservice.store.base import Notice, Store

__all__ = ["Watches"]

_REPLAY_PAGE = 512


class _Watcher:
    __slots__ = ("_limit", "_pending", "_ready", "closed", "key", "overflowed", "prefix")

    def __init__(self, key: str, prefix: bool, limit: int) -> None:
        self.key = key
        self.prefix = prefix
        self._limit = limit
        self._pending: collections.deque[WatchBatch] = collections.deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def matches(self, key: str) -> bool:
        return key.startswith(self.key) if self.prefix else key == self.key

    def offer(self, events: list[ChangeEvent]) -> None:
        if self.overflowed:
            return
        batch: list[ChangeEvent] = []
        for event in events:
            if not self.matches(event.resource.key):
                continue
            if batch and batch[-1].revision != event.revision:
                self._pending.append(WatchBatch(events=tuple(batch), revision=batch[-1].revision))
                batch = []
            batch.append(event)
        if batch:
            self._pending.append(WatchBatch(events=tuple(batch), revision=batch[-1].revision))
        if len(self._pending) > self._limit:
            self.overflowed = True
            self._pending.clear()
        self._ready.set()

    async def next(self) -> WatchBatch:
        while not self._pending:
            if self.closed:
                raise ShuttingDown(
                    "the server is shutting down; watch again (on another replica) from the next revision"
                )
            if self.overflowed:
                raise LimitExceeded(
                    f"the watcher fell more than {self._limit} responses behind; watch again with "
                    "start_revision set to the last revision received + 1",
                    metadata={"limit": str(self._limit)},
                )
            self._ready.clear()
            await self._ready.wait()
        return self._pending.popleft()


def _batches(events: list[ChangeEvent]) -> list[WatchBatch]:
    grouped: list[WatchBatch] = []
    for event in events:
        if grouped and grouped[-1].revision == event.revision:
            last = grouped.pop()
            grouped.append(WatchBatch(events=(*last.events, event), revision=event.revision))
        else:
            grouped.append(WatchBatch(events=(event,), revision=event.revision))
    return grouped


class Watches:
    def __init__(self, store: Store, limits: Limits) -> None:
        self._store = store
        self._limits = limits
        self._watchers: set[_Watcher] = set()
        self._closed = False
        store.subscribe(self._on_notices)

    @property
    def active(self) -> int:
        return len(self._watchers)

    def close(self) -> None:
        """Ends every watch with SHUTTING_DOWN, so a drain need not wait for streams that never end."""
        self._closed = True
        for watcher in self._watchers:
            watcher.close()

    def _on_notices(self, notices: list[Notice]) -> None:
        if not self._watchers:
            return
        events = [notice for notice in notices if isinstance(notice, ChangeEvent)]
        if events:
            for watcher in self._watchers:
                watcher.offer(events)

    async def watch(self, req: rq.Watch) -> AsyncIterator[WatchBatch]:
        """First an empty batch at the current revision (the watch is established), then the
        replay from `start_revision` if set, then live changes, until the caller stops."""
        if req.prefix:
            check_prefix(req.key, self._limits, field="key")
        else:
            check_key(req.key, self._limits)
        if req.start_revision < 0:
            raise InvalidArgument("start_revision must not be negative", metadata={"field": "start_revision"})
        watcher = _Watcher(req.key, req.prefix, self._limits.watch_queue_size)
        if self._closed:
            watcher.close()
        self._watchers.add(watcher)
        try:
            compacted = await self._store.compacted_revision()
            if 0 < req.start_revision <= compacted:
                raise RevisionCompacted(
                    f"revision {req.start_revision} is compacted; "
                    f"the oldest retained revision is {compacted + 1}",
                    metadata={
                        "oldest_revision": str(compacted + 1),
                        "start_revision": str(req.start_revision),
                    },
                )
            current = await self._store.current_revision()
            yield WatchBatch(events=(), revision=current)
            sent = current
            if req.start_revision:
                sent = req.start_revision - 1
                while True:
                    seen = await self._store.current_revision()
                    events = await self._store.events_after(sent, req.key, req.prefix, _REPLAY_PAGE)
                    for batch in _batches(events):
                        yield batch
                        sent = batch.revision
                    if len(events) < _REPLAY_PAGE:
                        sent = max(sent, seen)
                        break
            while True:
                batch = await watcher.next()
                if batch.revision > sent:
                    yield batch
                    sent = batch.revision
        finally:
            self._watchers.discard(watcher)
