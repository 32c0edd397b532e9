"""How a commit reaches the listeners of every replica.

Lock hand-overs travel as NOTIFY payloads on one channel and wake the waiting call on whichever
replica holds it. Watch events are not sent: a NOTIFY on another channel carries only the new
revision, and each replica reads the events back from the `events` table in revision order
(`Relay.pump`), so every replica publishes every change once and in order, whoever wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence

import psycopg
import structlog

from lockservice.codec import decode_lock_view, encode_lock_view
from lockservice.errors import LockserviceError
from lockservice.model import ChangeEvent, LockGranted, NoticesLost, WaiterFailed
from lockservice.store.base import Notice
from lockservice.store.outage import Outage
from lockservice.store.postgres.connections import (
    CONNECT_TIMEOUT_SECONDS,
    connection_cause,
    dead_peer_options,
)
from lockservice.store.postgres.txn import PostgresTxn

__all__ = ["Relay", "announce"]

_log = structlog.get_logger("lockservice.store.postgres")

_EVENTS_CHANNEL = "lockservice_events"
_LOCKS_CHANNEL = "lockservice_locks"
_PUMP_PAGE = 1000
_LISTEN_RETRY_SECONDS = (0.5, 4.0)

ReadEvents = Callable[[int, str, bool, int], Awaitable[list[ChangeEvent]]]


def _encode_notice(notice: LockGranted | WaiterFailed) -> str:
    if isinstance(notice, LockGranted):
        return json.dumps({"granted": notice.waiter_id, "lock": json.loads(encode_lock_view(notice.lock))})
    return json.dumps(
        {"failed": notice.waiter_id, "name": notice.name, "reason": notice.reason, "message": notice.message}
    )


def _decode_notice(payload: str) -> LockGranted | WaiterFailed:
    data = json.loads(payload)
    if "granted" in data:
        return LockGranted(waiter_id=data["granted"], lock=decode_lock_view(json.dumps(data["lock"])))
    return WaiterFailed(
        waiter_id=data["failed"], name=data["name"], reason=data["reason"], message=data["message"]
    )


def announce(txn: PostgresTxn, notices: Sequence[Notice], revision: int | None) -> None:
    """In a body's transaction: the NOTIFYs of its lock notices and of its revision (if it made
    a change), which PostgreSQL delivers when (and only if) the transaction commits. Queued:
    they travel with the COMMIT."""
    for notice in notices:
        if isinstance(notice, LockGranted | WaiterFailed):
            txn.defer(b"SELECT pg_notify(%s, %s)", (_LOCKS_CHANNEL, _encode_notice(notice)))
    if revision is not None:
        txn.defer(b"SELECT pg_notify(%s, %s)", (_EVENTS_CHANNEL, str(revision)))


class Relay:
    """One replica's end: `listen` relays NOTIFY (reconnecting), `pump` reads events back.
    Both run as tasks of the store until it closes."""

    def __init__(
        self,
        url: str,
        target: str,
        publish: Callable[[Sequence[Notice]], None],
        read_events: ReadEvents,
        connection_lost: Callable[[], None],
    ) -> None:
        """`publish` hands notices to the store's listeners; `read_events(after, key, prefix,
        limit)` is the store's `events_after`; `connection_lost` wakes the availability probe."""
        self._url = url
        self._publish = publish
        self._read_events = read_events
        self._connection_lost = connection_lost
        self._wake = asyncio.Event()
        self.closed = False
        # The last revision published; set at open to the stored revision.
        self.pumped_revision = 0
        self._listen_lost = Outage(
            _log,
            started="listen connection lost; reconnecting",
            ongoing="listen connection still lost",
            ended="listen connection restored",
            database=target,
        )

    def wake(self) -> None:
        """Reads events now (this replica committed one), not at the next NOTIFY or second."""
        self._wake.set()

    async def listen(self) -> None:
        """Relays NOTIFY: lock notices to listeners, event revisions to the pump. Reconnects."""
        retry = _LISTEN_RETRY_SECONDS[0]
        listened = False
        while not self.closed:
            try:
                aconn = await psycopg.AsyncConnection.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    **dead_peer_options(self._url),
                )
                async with aconn:
                    await aconn.execute(f"LISTEN {_EVENTS_CHANNEL}".encode())
                    await aconn.execute(f"LISTEN {_LOCKS_CHANNEL}".encode())
                    self._listen_lost.ended()
                    retry = _LISTEN_RETRY_SECONDS[0]
                    self._wake.set()  # catch up on anything committed while disconnected
                    if listened:  # lock notices sent while disconnected went to nobody
                        self._publish([NoticesLost()])
                    listened = True
                    async for notify in aconn.notifies():
                        if notify.channel == _LOCKS_CHANNEL:
                            self._publish([_decode_notice(notify.payload)])
                        else:
                            self._wake.set()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as error:
                self._listen_lost.failed(connection_cause(error))
                self._connection_lost()
                await asyncio.sleep(retry)
                retry = min(retry * 2, _LISTEN_RETRY_SECONDS[1])

    async def pump(self) -> None:
        """Publishes committed events in revision order, whichever replica wrote them."""
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
            try:
                while True:
                    events = await self._read_events(self.pumped_revision, "", True, _PUMP_PAGE)
                    if not events:
                        break
                    self.pumped_revision = events[-1].revision
                    self._publish(list(events))
                    if len(events) < _PUMP_PAGE:
                        break
            except asyncio.CancelledError:
                raise
            except LockserviceError:
                await asyncio.sleep(0.5)
