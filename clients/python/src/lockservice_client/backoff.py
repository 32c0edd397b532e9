"""Exponential backoff with jitter, for retrying a conflicting write a bounded number of times."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """`attempts` tries in all; before retry n (0-based) wait `initial * multiplier**n` seconds,
    capped at `maximum`, of which a random fraction `jitter` is drawn off (1.0 is "full jitter":
    uniform between 0 and the cap), so that competing writers spread out instead of colliding again.
    """

    attempts: int = 10
    initial: float = 0.01
    multiplier: float = 2.0
    maximum: float = 1.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Backoff.attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("Backoff.jitter must be between 0 and 1")

    def delay(self, retry: int, uniform: Callable[[], float] = random.random) -> float:
        """Seconds to sleep before retry number `retry` (0 for the first retry)."""
        ceiling = min(self.maximum, self.initial * self.multiplier**retry)
        return ceiling * (1.0 - self.jitter * uniform())
