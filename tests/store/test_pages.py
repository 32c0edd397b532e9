"""Pages cut by bytes (`lockservice.store.sql`) on a real SQLite store: a page ends at the row
whose footprint reaches the limit, a Watch page finishes the revision it ends in, and reading on
from a page's end misses nothing.

The same functions serve PostgreSQL; its pages are exercised end to end in
tests/e2e/test_memory_bounds.py and tests/e2e/test_list_and_history.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from lockservice.model import RESOURCE_OVERHEAD_BYTES, Resource
from lockservice.store.base import WriteTxn
from lockservice.store.sqlite import SqliteStore


def _put_all(values: dict[str, bytes]) -> Callable[[WriteTxn], None]:
    """Puts every key in one body: one revision for all of them."""

    def body(txn: WriteTxn) -> None:
        revision = txn.next_revision()
        for key, value in values.items():
            current = txn.get(key)
            txn.put(
                Resource(
                    key=key,
                    value=value,
                    content_type="",
                    version=1 if current is None else current.version + 1,
                    create_revision=revision if current is None else current.create_revision,
                    mod_revision=revision,
                    create_time_us=txn.now_us,
                    update_time_us=txn.now_us,
                )
            )

    return body


def _footprint(key: str, size: int) -> int:
    return len(key) + size + RESOURCE_OVERHEAD_BYTES


def test_list_and_version_pages_end_at_the_row_that_reaches_the_byte_limit(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        try:
            for index in range(6):
                await store.write(_put_all({f"p/{index}": bytes(1000)}))
            for version in range(4):
                await store.write(_put_all({"p/0": bytes(1000 + version)}))
            limit = 2 * _footprint("p/0", 1000) + 100  # reached by the third row (p/0 is 1003 bytes)
            page = await store.list_resources("p/", "", 100, with_values=True, max_bytes=limit)
            assert [r.key for r in page] == ["p/0", "p/1", "p/2"]
            rest = await store.list_resources("p/", "p/2", 100, with_values=True, max_bytes=10**9)
            assert [r.key for r in rest] == ["p/3", "p/4", "p/5"]
            # Without values nothing is cut but the count.
            bare = await store.list_resources("p/", "", 100, with_values=False, max_bytes=1)
            assert len(bare) == 6 and bare[0].value == b""
            versions = await store.list_versions("p/0", 1, 6, 100, with_values=True, max_bytes=1)
            assert [r.version for r in versions] == [5]
            assert len(versions[0].value) == 1003
        finally:
            await store.close()

    asyncio.run(scenario())


def test_an_event_page_finishes_the_revision_it_ends_in_and_resumes_without_a_gap(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        try:
            await store.write(_put_all({"e/a": bytes(5000)}))  # revision 1
            await store.write(_put_all({"e/b": bytes(10), "e/c": bytes(5000), "e/d": bytes(10)}))  # 2
            await store.write(_put_all({"e/e": bytes(10)}))  # revision 3
            first = await store.events_after(0, "e/", True, 100, max_bytes=1)
            assert [(e.revision, e.resource.key) for e in first] == [(1, "e/a")]
            # Reaches the limit at e/b, but revision 2 is finished whole.
            second = await store.events_after(1, "e/", True, 100, max_bytes=10)
            assert [(e.revision, e.resource.key) for e in second] == [(2, "e/b"), (2, "e/c"), (2, "e/d")]
            last = await store.events_after(2, "e/", True, 100, max_bytes=10**9)
            assert [(e.revision, e.resource.key) for e in last] == [(3, "e/e")]
            # By count alone (no byte limit), whole revisions too.
            counted = await store.events_after(0, "e/", True, 2, max_bytes=0)
            assert [e.revision for e in counted] == [1, 2, 2, 2]
        finally:
            await store.close()

    asyncio.run(scenario())
