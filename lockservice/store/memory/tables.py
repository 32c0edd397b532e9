"""What the memory store holds, and the queries both its transactions and its reads run.

The tables mirror the SQL stores' (`lockservice.store.rows`): current resources, the retained
versions of each key's current incarnation, the events Watch replays, request answers, leases,
locks and the lock queues. Queries return what the SQL stores' return, in the same order.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace

from lockservice.model import ChangeEvent, Lease, LockState, LockWaiter, Resource
from lockservice.store.base import StoredAnswer

__all__ = [
    "Tables",
    "event_page",
    "footprint_cut",
    "resource_page",
    "version_page",
]


@dataclass(slots=True)
class Tables:
    resources: dict[str, Resource] = field(default_factory=dict)
    # key -> version -> state, for the key's current incarnation only.
    versions: dict[str, dict[int, Resource]] = field(default_factory=dict)
    # In revision order (and, within a revision, in the order the body made them).
    events: list[ChangeEvent] = field(default_factory=list)
    # request key -> (answer, when it was saved), in the order they were saved.
    answers: dict[str, tuple[StoredAnswer, int]] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    locks: dict[str, LockState] = field(default_factory=dict)
    # waiter_id -> waiter; the queue order is `seq`, not this dict's order (a rollback re-adds).
    waiters: dict[str, LockWaiter] = field(default_factory=dict)
    revision: int = 0
    compacted: int = 0
    last_seq: int = 0

    def queue(self, name: str | None = None, lease_id: str | None = None) -> list[LockWaiter]:
        """Queued waiters (of lock `name`, or under lease `lease_id`, when given), first come first."""
        return sorted(
            (
                waiter
                for waiter in self.waiters.values()
                if (name is None or waiter.name == name) and (lease_id is None or waiter.lease_id == lease_id)
            ),
            key=lambda waiter: waiter.seq,
        )

    def held_lock_names(self, lease_id: str) -> list[str]:
        return sorted(s.name for s in self.locks.values() if s.held and s.lease_id == lease_id)

    def leased_keys(self, lease_id: str) -> list[str]:
        return sorted(r.key for r in self.resources.values() if r.lease_id == lease_id)


def footprint_cut(rows: list[Resource], max_bytes: int) -> list[Resource]:
    """Every row, or with `max_bytes` the rows up to and including the one whose footprint
    brings the total to `max_bytes` (so at least one): `lockservice.store.sql` cuts the same."""
    if max_bytes <= 0:
        return rows
    total = 0
    for count, row in enumerate(rows, start=1):
        total += row.footprint
        if total >= max_bytes:
            return rows[:count]
    return rows


def _shown(resource: Resource, with_values: bool) -> Resource:
    return resource if with_values else replace(resource, value=b"")


def resource_page(
    tables: Tables, prefix: str, start_after: str, limit: int, with_values: bool, max_bytes: int
) -> list[Resource]:
    """As `Store.list_resources`: keys sort by code point, which is the UTF-8 byte order."""
    keys = sorted(key for key in tables.resources if key > start_after and key.startswith(prefix))
    rows = footprint_cut([tables.resources[key] for key in keys[:limit]], max_bytes if with_values else 0)
    return [_shown(row, with_values) for row in rows]


def version_page(
    tables: Tables,
    key: str,
    create_revision: int,
    below_version: int,
    limit: int,
    with_values: bool,
    max_bytes: int,
) -> list[Resource]:
    """As `Store.list_versions`: newest first."""
    kept = tables.versions.get(key, {})
    rows = [
        kept[version]
        for version in sorted(kept, reverse=True)
        if version < below_version and kept[version].create_revision == create_revision
    ][:limit]
    return [_shown(row, with_values) for row in footprint_cut(rows, max_bytes if with_values else 0)]


def event_page(
    tables: Tables, after: int, key: str, prefix: bool, limit: int, max_bytes: int
) -> list[ChangeEvent]:
    """As `Store.events_after`: about `limit` events (and `max_bytes`), in whole revisions."""
    start = bisect.bisect_right(tables.events, after, key=lambda event: event.revision)

    def matches(event: ChangeEvent) -> bool:
        name = event.resource.key
        return name.startswith(key) if prefix else name == key

    matching = [event for event in tables.events[start:] if matches(event)]
    first = matching[:limit]
    if not first:
        return []
    cut = footprint_cut([event.resource for event in first], max_bytes)
    last_revision = first[len(cut) - 1].revision
    return [event for event in matching if event.revision <= last_revision]
