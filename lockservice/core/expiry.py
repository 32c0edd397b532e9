"""The expiry task: ends leases at their deadline and ends lock-delays, without anyone asking.

It sleeps until the store's next deadline (at most a second, so a clock step or a change made
by another replica is noticed), then ends every lease that is due in one write: their locks go
to the next waiters, their resources are deleted as EXPIRE events (`leases.end`); and hands
each lock whose lock-delay has ended to its first waiter (`locks.handoff`). It sits above both
packages, as the one task that drives the time-based rules of each.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from lockservice.core.leases.end import end_lease
from lockservice.core.locks.handoff import hand_over
from lockservice.errors import StoreUnavailable
from lockservice.store.base import Store, WriteTxn

__all__ = ["Expirer"]

_log = structlog.get_logger("lockservice.expiry")

_BATCH = 256
_MAX_SLEEP_SECONDS = 1.0
_RETRY_SECONDS = 0.5


def _expire_due(txn: WriteTxn) -> tuple[int, int]:
    """Ends what is due; returns how many leases it ended and locks it handed over."""
    leases = txn.expired_leases(txn.now_us, _BATCH)
    for lease in leases:
        end_lease(txn, lease, expired=True)
    locks = txn.delayed_locks_with_waiters(txn.now_us, _BATCH)
    for state in locks:
        hand_over(txn, state)
    return len(leases), len(locks)


class Expirer:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Leases this task ended, counted after their commit (metrics). A lease that a lock call
        # finds past its deadline first is ended by that call and not counted here.
        self.expired_leases = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lease-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def poke(self) -> None:
        """A new deadline may be earlier than the one being slept towards."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                deadline = await self._store.next_deadline()
                now = self._store.now_us()
                if deadline is not None and deadline <= now:
                    leases, locks = await self._store.write(_expire_due)
                    self.expired_leases += leases
                    if leases or locks:
                        _log.debug("expired", leases=leases, locks=locks)
                    continue
                sleep = (
                    _MAX_SLEEP_SECONDS
                    if deadline is None
                    else min(_MAX_SLEEP_SECONDS, (deadline - now) / 1e6)
                )
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:
                sleep = _RETRY_SECONDS  # the store reports its outage itself, once
            except Exception:
                _log.exception("expiry failed; retrying")
                sleep = _RETRY_SECONDS
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep)
