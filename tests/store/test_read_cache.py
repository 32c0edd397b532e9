"""ReadCache: newest state wins whatever the order of offers; bounded, oldest entry out first."""

from __future__ import annotations

from lockservice.model import Resource
from lockservice.store.read_cache import ReadCache


def _resource(key: str, revision: int, value: bytes = b"v") -> Resource:
    return Resource(
        key=key,
        value=value,
        content_type="text/plain",
        version=revision,
        create_revision=1,
        mod_revision=revision,
        create_time_us=1,
        update_time_us=1,
    )


def test_an_unknown_key_is_a_miss_and_a_deleted_one_a_known_absence() -> None:
    cache = ReadCache(4)
    assert cache.lookup("k") == (False, None)
    cache.offer("k", 3, None)
    assert cache.lookup("k") == (True, None)


def test_an_older_state_never_replaces_a_newer_one() -> None:
    cache = ReadCache(4)
    newer = _resource("k", 7, b"new")
    cache.offer("k", 7, newer)
    cache.offer("k", 5, _resource("k", 5, b"old"))  # a commit published after a fresher read
    cache.offer("k", 6, None)
    assert cache.lookup("k") == (True, newer)
    cache.offer("k", 8, None)  # a later delete does
    assert cache.lookup("k") == (True, None)
    recreated = _resource("k", 9, b"again")
    cache.offer("k", 9, recreated)
    assert cache.lookup("k") == (True, recreated)


def test_the_oldest_entry_goes_first_when_full() -> None:
    cache = ReadCache(2)
    for index, key in enumerate(("a", "b", "c"), start=1):
        cache.offer(key, index, _resource(key, index))
    assert len(cache) == 2
    assert cache.lookup("a") == (False, None)
    assert [cache.lookup(key)[0] for key in ("b", "c")] == [True, True]


def test_no_capacity_keeps_nothing() -> None:
    cache = ReadCache(0)
    cache.offer("k", 1, _resource("k", 1))
    assert cache.lookup("k") == (False, None)


def test_bytes_bound_the_cache_as_entries_do_oldest_out_first() -> None:
    one = _resource("a", 1, b"x" * 1000).footprint
    cache = ReadCache(100, max_bytes=8 * one)
    for index in range(12):
        key = chr(ord("a") + index)
        cache.offer(key, index + 1, _resource(key, index + 1, b"x" * 1000))
    assert cache.bytes <= 8 * one
    assert len(cache) == 8
    assert cache.lookup("d") == (False, None)
    assert cache.lookup("e")[0] and cache.lookup("l")[0]


def test_a_value_too_large_to_keep_is_read_from_the_file_and_no_older_state_comes_back() -> None:
    cache = ReadCache(100, max_bytes=8000)
    cache.offer("k", 1, _resource("k", 1, b"small"))
    cache.offer("k", 2, _resource("k", 2, b"x" * 2000))  # over an eighth of the bytes
    assert cache.lookup("k") == (False, None)
    assert cache.bytes < 100
    cache.offer("k", 1, _resource("k", 1, b"small"))  # a read of the file from before revision 2
    assert cache.lookup("k") == (False, None)
    newer = _resource("k", 3, b"small again")
    cache.offer("k", 3, newer)
    assert cache.lookup("k") == (True, newer)
