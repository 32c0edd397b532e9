"""Keeping a lease alive in the background: a thread (sync) or a task (asyncio).

Each refresh is a unary RefreshLease with its own deadline, every third of the TTL. The keeper
tracks a conservative local expiry (the send time of the last confirmed refresh plus the TTL):
while refreshes fail with a retryable error (UNAVAILABLE, a passed deadline) it retries every
quarter second until that expiry, then reports the lease lost; an answer that the lease is gone
(NOT_FOUND) or any other error reports it lost at once. `on_lost` is called once, with the cause.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from lockservice_client.errors import DeadlineExceeded, LockserviceError, Unavailable

__all__ = ["AsyncLeaseKeeper", "LeaseKeeper", "LeaseSchedule"]

RETRY_PAUSE_SECONDS = 0.25
MIN_CALL_TIMEOUT_SECONDS = 0.05
RETRYABLE = (Unavailable, DeadlineExceeded)

OnLost = Callable[[BaseException], None]


class LeaseSchedule:
    """When to refresh a lease of `ttl_seconds`, and whether it may have expired, by a monotonic clock.

    `confirmed_at` is a time at or before the server last set the lease's deadline (the send time
    of the call that granted or refreshed it), so `expires_at` never overestimates.
    """

    def __init__(self, ttl_seconds: float, confirmed_at: float) -> None:
        self.ttl_seconds = ttl_seconds
        self.interval = ttl_seconds / 3
        self.confirmed_at = confirmed_at

    @property
    def expires_at(self) -> float:
        return self.confirmed_at + self.ttl_seconds

    def confirm(self, sent_at: float) -> None:
        self.confirmed_at = sent_at

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def lost_by(self, error: LockserviceError, now: float) -> bool:
        """Whether a failed refresh means the lease is lost (else: retry it soon)."""
        return not isinstance(error, RETRYABLE) or self.expired(now)

    def wait_before_refresh(self, now: float, last_failed: bool) -> float:
        if last_failed:
            return max(0.0, min(RETRY_PAUSE_SECONDS, self.expires_at - now))
        return max(0.0, self.confirmed_at + self.interval - now)

    def call_timeout(self, now: float) -> float:
        return max(MIN_CALL_TIMEOUT_SECONDS, min(self.interval, self.expires_at - now))


class LeaseKeeper:
    """Calls `refresh(timeout)` on a daemon thread until `stop()` or until the lease is lost."""

    def __init__(self, refresh: Callable[[float], object], schedule: LeaseSchedule, on_lost: OnLost) -> None:
        self._refresh = refresh
        self._schedule = schedule
        self._on_lost = on_lost
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lockservice-lease-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        schedule = self._schedule
        failed = False
        while not self._stopping.wait(schedule.wait_before_refresh(time.monotonic(), failed)):
            sent_at = time.monotonic()
            try:
                self._refresh(schedule.call_timeout(sent_at))
            except LockserviceError as error:
                if self._stopping.is_set():
                    return
                if schedule.lost_by(error, time.monotonic()):
                    self._on_lost(error)
                    return
                failed = True
            else:
                schedule.confirm(sent_at)
                failed = False


class AsyncLeaseKeeper:
    """Awaits `refresh(timeout)` in a task until `stop()` or until the lease is lost."""

    def __init__(
        self, refresh: Callable[[float], Awaitable[object]], schedule: LeaseSchedule, on_lost: OnLost
    ) -> None:
        self._refresh = refresh
        self._schedule = schedule
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lockservice-lease-keeper")

    async def stop(self) -> None:
        if self._task is None or self._task.done():
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def _run(self) -> None:
        schedule = self._schedule
        failed = False
        while True:
            await asyncio.sleep(schedule.wait_before_refresh(time.monotonic(), failed))
            sent_at = time.monotonic()
            try:
                await self._refresh(schedule.call_timeout(sent_at))
            except LockserviceError as error:
                if schedule.lost_by(error, time.monotonic()):
                    self._on_lost(error)
                    return
                failed = True
            else:
                schedule.confirm(sent_at)
                failed = False
