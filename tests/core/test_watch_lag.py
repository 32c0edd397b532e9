"""How far watchers lag, as the metrics read it: the longest unread queue and the watchers cut off."""

from __future__ import annotations

import asyncio

import pytest

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.watch import Watches
from lockservice.errors import LimitExceeded
from lockservice.model import ChangeEvent, EventType, Resource
from lockservice.store.base import NoticeListener


class NoticeSource:
    """The part of a store the watch hub uses: notices after commit, and the revision counters."""

    def __init__(self) -> None:
        self.listeners: list[NoticeListener] = []
        self.revision = 0

    def subscribe(self, listener: NoticeListener) -> None:
        self.listeners.append(listener)

    async def compacted_revision(self) -> int:
        return 0

    async def current_revision(self) -> int:
        return self.revision

    def commit(self, key: str) -> None:
        self.revision += 1
        resource = Resource(key, b"v", "", 1, self.revision, self.revision, 0, 0)
        for listener in self.listeners:
            listener([ChangeEvent(EventType.PUT, resource, self.revision)])


def test_longest_backlog_and_cut_off() -> None:
    async def scenario() -> None:
        source = NoticeSource()
        watches = Watches(source, Limits(watch_queue_size=4))  # type: ignore[arg-type]
        slow = watches.watch(rq.Watch(key="k"))
        fast = watches.watch(rq.Watch(key="k"))
        await slow.__anext__()  # established
        await fast.__anext__()
        assert (watches.active, watches.longest_backlog, watches.cut_off) == (2, 0, 0)
        for _ in range(3):
            source.commit("k")
        await fast.__anext__()
        assert watches.longest_backlog == 3  # the slow one has read nothing
        for _ in range(2):
            source.commit("k")  # the slow one falls 5 behind a queue of 4
        with pytest.raises(LimitExceeded):
            await slow.__anext__()
        assert (watches.active, watches.cut_off) == (1, 1)
        assert watches.longest_backlog == 4  # the fast one has 4 unread now
        await fast.aclose()  # type: ignore[attr-defined]  # an async generator underneath
        assert (watches.active, watches.longest_backlog, watches.cut_off) == (0, 0, 1)

    asyncio.run(scenario())
