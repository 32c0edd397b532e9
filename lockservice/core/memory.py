"""The server's memory budget for values it holds on clients' behalf (`--memory-budget`).

Values are what make memory grow: a key is at most 512 bytes, a value up to `max_value_bytes`.
Every place that holds values for a while counts them here, in bytes, against one budget split
in fixed shares, so no single use can take the whole:

- half for the store's caches: on SQLite, a quarter of the budget for the read cache of
  current values (`ReadCache`, which evicts to fit) and an eighth for the page cache of each of
  its two connections (SQLite keeps a large value's pages there too); PostgreSQL's replicas
  keep no values, so this half stays unused there;
- a quarter for reply pages being built and sent: Watch replay pages and list pages with
  values. Each page reserves its worst case before it is read and gives it back once sent; a
  page that cannot get room within `PAGE_WAIT_SECONDS` is refused with RESOURCE_EXHAUSTED;
- a quarter for live changes queued to watchers that have not taken them yet: a watcher whose
  queue would overrun the share is cut off with LIMIT_EXCEEDED and resumes from its revision.

What a resource costs is its `Resource.footprint`. A page carries values up to
`page_value_bytes` (the largest value: at least one resource or one whole revision always fits),
so every reply fits in a gRPC message whatever the page size asked. A reply that cannot fit (a
value stored under a larger `--max-value-bytes` than the server now runs with) is refused before
it is sent, naming the limit (`fit_reply`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from lockservice.core.limits import message_bytes
from lockservice.errors import LimitExceeded
from lockservice.model import RESOURCE_OVERHEAD_BYTES, Resource

__all__ = ["PAGE_WAIT_SECONDS", "MemoryBudget"]

PAGE_WAIT_SECONDS = 10.0


class MemoryBudget:
    """One budget of `total_bytes` for a server whose largest value is `max_value_bytes`."""

    def __init__(self, total_bytes: int, max_value_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.cache_bytes = total_bytes // 2
        self.page_share_bytes = total_bytes // 4
        self.watcher_share_bytes = total_bytes - self.cache_bytes - self.page_share_bytes
        self.page_value_bytes = max_value_bytes
        self.reply_bytes = message_bytes(max_value_bytes)
        # The most a page can hold: values up to the cap, then one more resource that crosses it.
        self.page_reserve_bytes = min(
            self.page_share_bytes, 2 * max_value_bytes + 1024 + RESOURCE_OVERHEAD_BYTES
        )
        self._pages_free = self.page_share_bytes
        self._pages_freed = asyncio.Condition()
        self._watchers_used = 0

    @property
    def pages_in_use_bytes(self) -> int:
        return self.page_share_bytes - self._pages_free

    @property
    def watchers_in_use_bytes(self) -> int:
        return self._watchers_used

    @contextlib.asynccontextmanager
    async def page(self) -> AsyncIterator[int]:
        """Room for one reply page while it is read and sent; yields the value bytes it may
        carry. LIMIT_EXCEEDED when the page share stays taken for `PAGE_WAIT_SECONDS`."""
        need = self.page_reserve_bytes
        async with self._pages_freed:
            try:
                await asyncio.wait_for(
                    self._pages_freed.wait_for(lambda: self._pages_free >= need), PAGE_WAIT_SECONDS
                )
            except TimeoutError:
                raise LimitExceeded(
                    f"the server's memory budget for replies ({self.page_share_bytes} bytes, a quarter "
                    "of --memory-budget) stayed in use by other pages; retry shortly",
                    metadata={"limit": str(self.page_share_bytes), "quota": "memory"},
                ) from None
            self._pages_free -= need
        try:
            yield self.page_value_bytes
        finally:
            self._pages_free += need
            await self._notify_pages()

    async def _notify_pages(self) -> None:
        async with self._pages_freed:
            self._pages_freed.notify_all()

    def take_watcher_bytes(self, nbytes: int) -> bool:
        """Counts `nbytes` queued to a watcher; False (nothing counted) when the share is full."""
        if self._watchers_used + nbytes > self.watcher_share_bytes:
            return False
        self._watchers_used += nbytes
        return True

    def give_watcher_bytes(self, nbytes: int) -> None:
        self._watchers_used -= nbytes

    def fit_reply(self, resources: Sequence[Resource]) -> int:
        """How many leading `resources` one reply carries within the message limit (a list
        page's later ones go to the next page); LIMIT_EXCEEDED when not even the first fits."""
        total = 0
        for count, resource in enumerate(resources):
            total += resource.footprint
            if total > self.reply_bytes:
                if count == 0:
                    raise self._too_large(resource)
                return count
        return len(resources)

    def check_whole_reply(self, resources: Sequence[Resource]) -> None:
        """LIMIT_EXCEEDED when `resources`, which must travel together (a Watch response: one
        revision's changes), are more than one reply may carry."""
        if sum(resource.footprint for resource in resources) > self.reply_bytes:
            raise self._too_large(max(resources, key=lambda resource: resource.footprint))

    def _too_large(self, resource: Resource) -> LimitExceeded:
        return LimitExceeded(
            f"{resource.key} holds {len(resource.value)} bytes, more than a reply may carry "
            f"({self.reply_bytes} bytes, twice --max-value-bytes plus 64 KiB): it was stored under a "
            "larger --max-value-bytes; raise the server's --max-value-bytes to read it",
            metadata={"limit": str(self.reply_bytes), "key": resource.key, "field": "value"},
        )
