"""How long the store may wait on behalf of the call being served.

The RPC layer knows each call's deadline; the stores wait for database connections and re-run
contended writes. This neutral module (no gRPC, no SQL) carries the one to the other in a
context variable: the RPC wrapper calls `begin_call(context.time_remaining())`, and a store asks
`store_deadline()` before it waits. The HTTP adapter calls over gRPC, so its calls carry its
own call timeout the same way.

The rule: a store gives up by `STORE_WAIT_SECONDS` from now, and earlier when the caller's
deadline is nearer, keeping a fifth of what is left (at most `_MARGIN_SECONDS`) for the answer to
travel back, so the caller sees UNAVAILABLE / STORE_UNAVAILABLE rather than DEADLINE_EXCEEDED.
Work with no call (the expiry task, the event pump) gets `STORE_WAIT_SECONDS`.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

__all__ = ["STORE_WAIT_SECONDS", "begin_call", "end_call", "store_deadline"]

# The longest a store call waits for the database (a connection, a contended row), deadline or not.
STORE_WAIT_SECONDS = 5.0
_MARGIN_SECONDS = 0.5

# The caller's deadline on the time.monotonic() clock; None when it set none.
_call_deadline: ContextVar[float | None] = ContextVar("lockservice_call_deadline", default=None)


def begin_call(time_remaining: float | None) -> Token[float | None]:
    """Records the deadline of the call this task serves (`time_remaining` seconds from now, or
    none); returns the token for `end_call`."""
    deadline = None if time_remaining is None else time.monotonic() + time_remaining
    return _call_deadline.set(deadline)


def end_call(token: Token[float | None]) -> None:
    _call_deadline.reset(token)


def store_deadline() -> float:
    """The time.monotonic() instant by which a store must answer the current call."""
    now = time.monotonic()
    limit = now + STORE_WAIT_SECONDS
    deadline = _call_deadline.get()
    if deadline is None:
        return limit
    remaining = max(0.0, deadline - now)
    return min(limit, now + remaining - min(_MARGIN_SECONDS, remaining / 5))
