"""The clock a store reads for `now_us`: the system's, or one a test moves by hand.

Every lease deadline, lock-delay and waiter deadline is compared with the store's clock
(`WriteTxn.now_us`, `Store.now_us`), so a store built on a `ManualClock` lets a test make a lease
expire by advancing the clock, with no sleep and no dependence on how loaded the machine is.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch (UTC)."""
        ...


class SystemClock:
    """The machine's wall clock, as the SQLite store reads it."""

    def now_us(self) -> int:
        return time.time_ns() // 1000


# 2026-01-01T00:00:00Z: a plausible epoch time, so nothing mistakes a test's times for "unset" (0).
_DEFAULT_START_US = 1_767_225_600_000_000


class ManualClock:
    """A clock that stands still until told to move, and only ever moves forward (as the stores'
    clocks are assumed to, near enough, for deadlines)."""

    def __init__(self, start_us: int = _DEFAULT_START_US) -> None:
        self._now_us = start_us

    def now_us(self) -> int:
        return self._now_us

    def advance(self, seconds: float = 0.0, *, us: int = 0) -> int:
        """Moves the clock forward by `seconds` plus `us` microseconds; returns the new time."""
        step = round(seconds * 1_000_000) + us
        if step < 0:
            raise ValueError(f"a ManualClock only moves forward (asked to move {step} us)")
        self._now_us += step
        return self._now_us
