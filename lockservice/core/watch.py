"""Watch: replay retained changes from a revision, then follow live commits, in revision order.

Every watcher registers with the hub before it reads the store, so nothing committed in between
is missed; what arrives twice (in the replay and live) is dropped by revision. A watcher whose
consumer falls `watch_queue_size` responses behind, or whose queued changes would overrun the
watchers' share of the memory budget, is cut off with LIMIT_EXCEEDED instead of buffering
without bound; it can resume from the last revision it saw. A replay reads pages cut by bytes,
each holding room in the memory budget until it is sent (`lockservice.core.memory`).

Commits reach watchers through an index: watchers of one key by that key, so a commit costs
the watchers it concerns plus the prefix watchers, not every open watch. Deliveries go out in
slices, one slice a turn of the event loop, from one queue: waking 10,000 watchers at once
would hold every other call back for over a second (each wake-up costs a gRPC send), while the
single queue keeps each watcher's batches in revision order.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.memory import MemoryBudget
from lockservice.core.validation import check_key, check_prefix
from lockservice.errors import InvalidArgument, LimitExceeded, RevisionCompacted, ShuttingDown
from lockservice.model import ChangeEvent, WatchBatch
from lockservice.store.base import Notice, Store

__all__ = ["Watches"]

_REPLAY_PAGE = 512
# Watchers woken per turn of the event loop: about 15 ms of gRPC sends, so a call that arrives
# during a large fan-out waits for one slice, not for all of it.
_FAN_OUT_SLICE = 128


def _batch_bytes(batch: WatchBatch) -> int:
    return sum(event.resource.footprint for event in batch.events)


class _Watcher:
    __slots__ = (
        "_limit",
        "_memory",
        "_pending",
        "_pending_bytes",
        "_ready",
        "closed",
        "key",
        "overflowed",
        "prefix",
    )

    def __init__(self, key: str, prefix: bool, limit: int, memory: MemoryBudget) -> None:
        self.key = key
        self.prefix = prefix
        self._limit = limit
        self._memory = memory
        self._pending: collections.deque[WatchBatch] = collections.deque()
        self._pending_bytes = 0
        self._ready = asyncio.Event()
        self.overflowed: LimitExceeded | None = None
        self.closed = False

    def _overflow(self, why: str, limit: int) -> None:
        self.overflowed = LimitExceeded(
            f"the watcher {why}; watch again with start_revision set to the last revision received + 1",
            metadata={"limit": str(limit)},
        )
        self.release()

    @property
    def backlog(self) -> int:
        """Responses queued for this watcher that its consumer has not read yet."""
        return len(self._pending)

    def release(self) -> None:
        """Gives back the memory its queue holds (the watch ended)."""
        self._memory.give_watcher_bytes(self._pending_bytes)
        self._pending_bytes = 0
        self._pending.clear()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def offer(self, events: list[ChangeEvent]) -> None:
        """Queues `events` (all of them this watcher's, in revision order) as one batch per
        revision; overflows when the queue is too long or the watchers' memory share is spent."""
        if self.overflowed is not None:
            return
        for batch in _batches(events):
            size = _batch_bytes(batch)
            if len(self._pending) >= self._limit:
                self._overflow(f"fell more than {self._limit} responses behind", self._limit)
                break
            if not self._memory.take_watcher_bytes(size):
                share = self._memory.watcher_share_bytes
                self._overflow(
                    f"fell behind by more than the watchers' share of --memory-budget ({share} bytes)", share
                )
                break
            self._pending.append(batch)
            self._pending_bytes += size
        self._ready.set()

    async def next(self) -> WatchBatch:
        while not self._pending:
            if self.closed:
                raise ShuttingDown(
                    "the server is shutting down; watch again (on another replica) from the next revision"
                )
            if self.overflowed is not None:
                raise self.overflowed
            self._ready.clear()
            await self._ready.wait()
        batch = self._pending.popleft()
        size = _batch_bytes(batch)
        self._pending_bytes -= size
        self._memory.give_watcher_bytes(size)
        return batch


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
    def __init__(self, store: Store, limits: Limits, memory: MemoryBudget | None = None) -> None:
        self._store = store
        self._limits = limits
        self._memory = memory or MemoryBudget(limits.memory_budget_bytes, limits.max_value_bytes)
        self._watchers: set[_Watcher] = set()
        self._by_key: dict[str, set[_Watcher]] = {}
        self._prefixed: set[_Watcher] = set()
        self._deliveries: collections.deque[tuple[_Watcher, list[ChangeEvent]]] = collections.deque()
        self._delivering = False
        self._closed = False
        # Watchers ended for falling behind (metrics: a consumer too slow for its watch).
        self.cut_off = 0
        store.subscribe(self._on_notices)

    @property
    def active(self) -> int:
        return len(self._watchers)

    @property
    def longest_backlog(self) -> int:
        """The most responses any open watcher has yet to read: how far the slowest one lags."""
        return max((watcher.backlog for watcher in self._watchers), default=0)

    def close(self) -> None:
        """Ends every watch with SHUTTING_DOWN, so a drain need not wait for streams that never end."""
        self._closed = True
        for watcher in self._watchers:
            watcher.close()

    def _add(self, watcher: _Watcher) -> None:
        self._watchers.add(watcher)
        if watcher.prefix:
            self._prefixed.add(watcher)
        else:
            self._by_key.setdefault(watcher.key, set()).add(watcher)

    def _discard(self, watcher: _Watcher) -> None:
        if watcher.overflowed is not None:
            self.cut_off += 1
        self._watchers.discard(watcher)
        if watcher.prefix:
            self._prefixed.discard(watcher)
        else:
            same_key = self._by_key.get(watcher.key)
            if same_key is not None:
                same_key.discard(watcher)
                if not same_key:
                    del self._by_key[watcher.key]
        watcher.release()

    def _on_notices(self, notices: list[Notice]) -> None:
        if not self._watchers:
            return
        routed: dict[_Watcher, list[ChangeEvent]] = {}
        for notice in notices:
            if not isinstance(notice, ChangeEvent):
                continue
            key = notice.resource.key
            for watcher in self._by_key.get(key, ()):
                routed.setdefault(watcher, []).append(notice)
            for watcher in self._prefixed:
                if key.startswith(watcher.key):
                    routed.setdefault(watcher, []).append(notice)
        self._deliveries.extend(routed.items())
        if not self._delivering:
            self._delivering = True
            self._deliver_slice()

    def _deliver_slice(self) -> None:
        for _ in range(min(_FAN_OUT_SLICE, len(self._deliveries))):
            watcher, events = self._deliveries.popleft()
            if watcher in self._watchers:
                watcher.offer(events)
        if self._deliveries:
            asyncio.get_running_loop().call_soon(self._deliver_slice)
        else:
            self._delivering = False

    async def _check_not_overtaken(self, sent: int) -> None:
        """After a replay page is read: if the store has compacted past `sent` by now, events
        after `sent` may have been pruned before the read (pruning runs on its own schedule, on
        PostgreSQL in any replica), and the page may start past a gap. The compacted revision
        only grows and moves in the transaction that prunes, so reading it after the page is
        what makes the check sound; a prune just after the read is refused too (rarely)."""
        compacted = await self._store.compacted_revision()
        if compacted > sent:
            raise RevisionCompacted(
                f"revision {sent + 1} was compacted while this watch replayed it; "
                f"the oldest retained revision is {compacted + 1}",
                metadata={"oldest_revision": str(compacted + 1), "start_revision": str(sent + 1)},
            )

    async def watch(self, req: rq.Watch) -> AsyncIterator[WatchBatch]:
        """First an empty batch at the current revision (the watch is established), then the
        replay from `start_revision` if set, then live changes, until the caller stops."""
        if req.prefix:
            check_prefix(req.key, self._limits, field="key")
        else:
            check_key(req.key, self._limits)
        if req.start_revision < 0:
            raise InvalidArgument("start_revision must not be negative", metadata={"field": "start_revision"})
        watcher = _Watcher(req.key, req.prefix, self._limits.watch_queue_size, self._memory)
        if self._closed:
            watcher.close()
        self._add(watcher)
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
                    async with self._memory.page() as max_bytes:
                        events = await self._store.events_after(
                            sent, req.key, req.prefix, _REPLAY_PAGE, max_bytes
                        )
                        await self._check_not_overtaken(sent)
                        for batch in _batches(events):
                            self._memory.check_whole_reply([event.resource for event in batch.events])
                            yield batch
                            sent = batch.revision
                    cut_by_bytes = sum(event.resource.footprint for event in events) >= max_bytes
                    if not events or (len(events) < _REPLAY_PAGE and not cut_by_bytes):
                        sent = max(sent, seen)
                        break
            while True:
                batch = await watcher.next()
                if batch.revision > sent:
                    self._memory.check_whole_reply([event.resource for event in batch.events])
                    yield batch
                    sent = batch.revision
        finally:
            self._discard(watcher)
