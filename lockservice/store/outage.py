"""A failing condition of a store (the database unreachable, the disk full), logged without
flooding the log, and told to whoever watches the store's availability.

One line when the condition starts (with its cause), then at most one line every
`repeat_seconds` while it lasts (with how many failures it counted meanwhile), and one info line
when it ends. A failure that repeats twice a second for an hour is ~120 lines, not 7,200.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from lockservice.errors import StoreUnavailable
from lockservice.store.base import AvailabilityListener

__all__ = ["DISK_FULL", "Outage", "disk_full_error", "disk_full_outage"]

# ErrorInfo.metadata["cause"] of a write refused for a full disk, whichever the store.
DISK_FULL = "DISK_FULL"


def disk_full_error() -> StoreUnavailable:
    """What a write gets when the store's disk is full: nothing was applied, reads still work."""
    return StoreUnavailable(
        "the store's disk is full; this write was not applied (reads still work): retry once the "
        "operator has freed disk space",
        metadata={"cause": DISK_FULL},
    )


class Outage:
    """Thread-safe. Listeners are called with False when the condition starts and True when it
    ends, on the thread that reported the change."""

    def __init__(
        self,
        log: Any,
        *,
        started: str,
        ongoing: str,
        ended: str,
        level: str = "warning",
        repeat_seconds: float = 30.0,
        **fields: str,
    ) -> None:
        self._log = log
        self._events = (started, ongoing, ended)
        self._level = level
        self._repeat_seconds = repeat_seconds
        self._fields = fields
        self._guard = threading.Lock()
        self._since = 0.0
        self._last_line = 0.0
        self._failures = 0
        self._unreported = 0
        self._listeners: list[AvailabilityListener] = []
        self.active = False

    def subscribe(self, listener: AvailabilityListener) -> None:
        self._listeners.append(listener)

    def failed(self, cause: str) -> None:
        """One more failure: logs the start, or a summary when `repeat_seconds` have passed."""
        now = time.monotonic()
        with self._guard:
            self._failures += 1
            if not self.active:
                self.active = True
                self._since = self._last_line = now
                self._unreported = 0
                event, extra = self._events[0], {}
            elif now - self._last_line >= self._repeat_seconds:
                event = self._events[1]
                extra = {"failures": self._unreported + 1, "for_seconds": round(now - self._since, 1)}
                self._last_line = now
                self._unreported = 0
            else:
                self._unreported += 1
                return
            starting = event == self._events[0]
        getattr(self._log, self._level)(event, cause=cause, **extra, **self._fields)
        if starting:
            self._tell(False)

    def ended(self) -> None:
        """The condition is over (a no-op when it was not on)."""
        if not self.active:
            return
        now = time.monotonic()
        with self._guard:
            if not self.active:
                return
            self.active = False
            failures, self._failures = self._failures, 0
            seconds = round(now - self._since, 1)
        self._log.info(self._events[2], after_seconds=seconds, failures=failures, **self._fields)
        self._tell(True)

    def _tell(self, available: bool) -> None:
        for listener in self._listeners:
            listener(available)


def disk_full_outage(log: Any, database: str) -> Outage:
    """The full-disk condition of a store, logged at error, the same on every store."""
    return Outage(
        log,
        started="the store's disk is full",
        ongoing="the store's disk is still full",
        ended="writes succeed again",
        level="error",
        database=database,
    )
