"""The resource calls of the sync client against a live server: writes, lists across pages,
history, transactions and watch."""

from __future__ import annotations

import itertools

import pytest

from lockservice_client import Client, ResourceNotFound, VersionConflict
from lockservice_client.messages import Compare, DeleteOperation, Operation, PutOperation, WatchEvent


def test_put_upserts_and_honours_its_expectations(client: Client, prefix: str) -> None:
    key = f"{prefix}/k"
    created = client.put(key, b"v1", content_type="text/plain")
    assert (created.version, created.content_type) == (1, "text/plain")
    updated = client.put(key, b"v2", expected_etag=created.etag)
    assert (updated.version, updated.value, updated.content_type) == (2, b"v2", "text/plain")
    with pytest.raises(VersionConflict):
        client.put(key, b"v3", expected_etag=created.etag)
    with pytest.raises(ResourceNotFound):
        client.put(f"{prefix}/missing", b"v", allow_missing=False)


def test_delete_returns_the_last_state_and_tolerates_missing_when_asked(client: Client, prefix: str) -> None:
    key = f"{prefix}/k"
    client.create(key, b"v1")
    deleted = client.delete(key, expected_version=1)
    assert (deleted.resource.key, deleted.resource.version, deleted.revision) == (
        key,
        1,
        deleted.resource.mod_revision + 1,
    )
    with pytest.raises(ResourceNotFound):
        client.delete(key)
    assert not client.delete(key, allow_missing=True).HasField("resource")


def test_list_follows_pages_in_key_order(client: Client, prefix: str) -> None:
    keys = [f"{prefix}/item-{n:02d}" for n in range(7)]
    for key in reversed(keys):
        client.create(key, key.encode())
    listed = list(client.list(f"{prefix}/", page_size=3))
    assert [resource.key for resource in listed] == keys
    assert {resource.value for resource in listed} == {b""}
    assert [resource.value for resource in client.list(f"{prefix}/", page_size=3, with_values=True)] == [
        key.encode() for key in keys
    ]


def test_versions_are_newest_first(client: Client, prefix: str) -> None:
    key = f"{prefix}/k"
    client.create(key, b"v1")
    client.put(key, b"v2")
    client.put(key, b"v3")
    history = list(client.versions(key, page_size=2, with_values=True))
    assert [(resource.version, resource.value) for resource in history] == [
        (3, b"v3"),
        (2, b"v2"),
        (1, b"v1"),
    ]
    assert client.get(key, version=2).value == b"v2"


def test_transact_applies_all_operations_as_one_revision(client: Client, prefix: str) -> None:
    client.create(f"{prefix}/a", b"a")
    result = client.transact(
        [Compare(key=f"{prefix}/a", version=1), Compare(key=f"{prefix}/b", absent=True)],
        [
            Operation(put=PutOperation(key=f"{prefix}/b", value=b"b")),
            Operation(delete=DeleteOperation(key=f"{prefix}/a")),
        ],
    )
    assert [(r.resource.key, r.deleted) for r in result.results] == [
        (f"{prefix}/b", False),
        (f"{prefix}/a", True),
    ]
    assert result.results[0].resource.mod_revision == result.revision


def test_watch_replays_changes_in_revision_order_and_stops_when_closed(client: Client, prefix: str) -> None:
    first = client.create(f"{prefix}/a", b"1")
    client.put(f"{prefix}/a", b"2")
    client.delete(f"{prefix}/a")
    client.create(f"{prefix}/other-prefix-not-watched", b"x")
    events = client.watch(f"{prefix}/a", start_revision=first.mod_revision)
    seen = [
        (WatchEvent.EventType.Name(event.type), event.resource.version)
        for event in itertools.islice(events, 3)
    ]
    events.close()
    assert seen == [("PUT", 1), ("PUT", 2), ("DELETE", 2)]
