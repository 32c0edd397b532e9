"""The current state of recently used keys, in memory, for the SQLite store's reads.

A read served from here does not call into SQLite. Each call into SQLite releases the GIL, which
gRPC's own threads then take, and the event loop waits to get it back: measured on the `get`
bench, a read from memory costs 10-20% less server CPU per call than one from SQLite.

Entries are only ever replaced by a newer state (a higher revision), so a read never goes back in
time, whichever order a read of the file and the publication of a commit happen in. The size is
bounded; the oldest entry goes first. Used from the event loop's thread only.
"""

from __future__ import annotations

from lockservice.model import Resource

__all__ = ["ReadCache"]


class ReadCache:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        # key -> (revision of the state, the resource or None when deleted at that revision)
        self._entries: dict[str, tuple[int, Resource | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: str) -> tuple[bool, Resource | None]:
        """(True, the resource or None when deleted) when `key` is known; (False, None) when not."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        return True, entry[1]

    def offer(self, key: str, revision: int, resource: Resource | None) -> None:
        """Records the state of `key` at `revision`, unless a newer one is known already."""
        entries = self._entries
        entry = entries.get(key)
        if entry is not None:
            if entry[0] < revision:
                entries[key] = (revision, resource)
            return
        if self._capacity <= 0:
            return
        if len(entries) >= self._capacity:
            del entries[next(iter(entries))]
        entries[key] = (revision, resource)
