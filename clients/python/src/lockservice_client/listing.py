"""`list()` results: the resources page by page, and the store revision the listing was read at.

For a list-then-watch without a gap: iterate the listing, then `watch(prefix, prefix=True,
start_revision=listing.revision + 1)`. `revision` is the first page's: later pages are read at
later revisions, so a change made while paging may show in a page and again in the watch (its
`mod_revision` tells), but none is missed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from lockservice_client._proto import resource_pb2

__all__ = ["AsyncResourceListing", "ResourceListing"]

FetchPage = Callable[[str], resource_pb2.ListResourcesResponse]
FetchPageAsync = Callable[[str], Awaitable[resource_pb2.ListResourcesResponse]]


class _Revision:
    """The revision of the first page, once read."""

    def __init__(self) -> None:
        self._revision: int | None = None

    @property
    def revision(self) -> int:
        """The store revision the first page was read at. Raises RuntimeError before any page
        has been read (start iterating first)."""
        if self._revision is None:
            raise RuntimeError("no page of the listing has been read yet: iterate it first")
        return self._revision

    def _page_read(self, page: resource_pb2.ListResourcesResponse) -> None:
        if self._revision is None:
            self._revision = page.revision


class ResourceListing(_Revision, Iterator[resource_pb2.Resource]):
    """The resources of `Client.list()` in key order, fetched a page at a time as you iterate."""

    def __init__(self, fetch: FetchPage) -> None:
        super().__init__()
        self._items = self._walk(fetch)

    def _walk(self, fetch: FetchPage) -> Iterator[resource_pb2.Resource]:
        page_token = ""
        while True:
            page = fetch(page_token)
            self._page_read(page)
            yield from page.resources
            page_token = page.next_page_token
            if not page_token:
                return

    def __iter__(self) -> ResourceListing:
        return self

    def __next__(self) -> resource_pb2.Resource:
        return next(self._items)


class AsyncResourceListing(_Revision, AsyncIterator[resource_pb2.Resource]):
    """The resources of `AsyncClient.list()`: `async for`, then `revision`."""

    def __init__(self, fetch: FetchPageAsync) -> None:
        super().__init__()
        self._items = self._walk(fetch)

    async def _walk(self, fetch: FetchPageAsync) -> AsyncIterator[resource_pb2.Resource]:
        page_token = ""
        while True:
            page = await fetch(page_token)
            self._page_read(page)
            for resource in page.resources:
                yield resource
            page_token = page.next_page_token
            if not page_token:
                return

    def __aiter__(self) -> AsyncResourceListing:
        return self

    async def __anext__(self) -> resource_pb2.Resource:
        return await anext(self._items)
