"""Listing current resources: key order, prefix, resuming after a key, metadata-only pages,
pages cut by bytes; and the page tokens the core signs with the store's own secret."""

from __future__ import annotations

import pytest

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.resources import Resources
from lockservice.errors import InvalidPageToken
from lockservice.model import RESOURCE_OVERHEAD_BYTES
from lockservice.store.base import Store, WriteTxn
from tests.store.contract.bodies import put, put_in
from tests.store.contract.conftest import Stores

_KEYS = ["a", "a/1", "a/2", "a/b/1", "ab", "b", "b/1"]


def _all_keys(txn: WriteTxn) -> None:
    for key in reversed(_KEYS):  # stored in another order than they list in
        put_in(txn, key, key.encode())


@pytest.mark.parametrize(
    ("prefix", "start_after", "limit", "expected"),
    [
        ("", "", 100, _KEYS),
        ("", "", 3, ["a", "a/1", "a/2"]),
        ("", "a/2", 3, ["a/b/1", "ab", "b"]),
        ("a/", "", 100, ["a/1", "a/2", "a/b/1"]),
        ("a/", "a/1", 100, ["a/2", "a/b/1"]),
        ("a", "", 100, ["a", "a/1", "a/2", "a/b/1", "ab"]),
        ("b/", "", 100, ["b/1"]),
        ("c", "", 100, []),
        ("", "b/1", 100, []),
    ],
)
def test_a_list_page_is_in_key_order_under_the_prefix_after_the_cursor(
    stores: Stores, prefix: str, start_after: str, limit: int, expected: list[str]
) -> None:
    async def scenario(store: Store) -> None:
        await store.write(_all_keys)
        page = await store.list_resources(prefix, start_after, limit, with_values=True)
        assert [r.key for r in page] == expected
        assert all(r.value == r.key.encode() for r in page)

    stores.run(scenario)


def test_a_page_without_values_carries_everything_else(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        written = await store.write(put("k", b"value"))
        bare = await store.list_resources("", "", 10, with_values=False)
        assert len(bare) == 1
        assert bare[0].value == b""
        assert (bare[0].key, bare[0].version, bare[0].mod_revision, bare[0].content_type) == (
            "k",
            written.version,
            written.mod_revision,
            "text/plain",
        )
        # Without values there is nothing to cut by bytes.
        assert len(await store.list_resources("", "", 10, with_values=False, max_bytes=1)) == 1

    stores.run(scenario)


def test_a_page_cut_by_bytes_ends_at_the_resource_that_reaches_them(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        for key in ("k1", "k2", "k3", "k4"):
            await store.write(put(key, b"x" * 1000))
        each = len("k1") + 1000 + RESOURCE_OVERHEAD_BYTES
        page = await store.list_resources("", "", 100, with_values=True, max_bytes=2 * each)
        assert [r.key for r in page] == ["k1", "k2"]
        page = await store.list_resources("", "", 100, with_values=True, max_bytes=2 * each + 1)
        assert [r.key for r in page] == ["k1", "k2", "k3"]
        assert [r.key for r in await store.list_resources("", "", 100, with_values=True, max_bytes=1)] == [
            "k1"
        ]

    stores.run(scenario)


def test_the_page_token_secret_is_the_stores_own(stores: Stores) -> None:
    async def scenario(store: Store) -> None:
        other = await stores.open()
        try:
            assert len(store.page_token_secret) == 32
            assert store.page_token_secret != other.page_token_secret
        finally:
            await other.close()

    stores.run(scenario)


def test_pages_followed_by_token_list_every_key_once_and_another_stores_token_is_refused(
    stores: Stores,
) -> None:
    async def scenario(store: Store) -> None:
        def many(txn: WriteTxn) -> None:
            for index in range(25):
                put_in(txn, f"p/{index:02}", b"v")

        await store.write(many)
        resources = Resources(store, Limits())
        listed: list[str] = []
        token = ""
        for _ in range(10):
            page = await resources.list(rq.ListResources(prefix="p/", page_size=10, page_token=token))
            listed += [r.key for r in page.items]
            assert page.revision == 1
            token = page.next_page_token
            if not token:
                break
        assert listed == [f"p/{index:02}" for index in range(25)]

        first = await resources.list(rq.ListResources(prefix="p/", page_size=10))
        other = await stores.open()
        try:
            with pytest.raises(InvalidPageToken) as refused:
                await Resources(other, Limits()).list(
                    rq.ListResources(prefix="p/", page_size=10, page_token=first.next_page_token)
                )
            assert refused.value.metadata == {"field": "page_token"}
        finally:
            await other.close()

    stores.run(scenario)
