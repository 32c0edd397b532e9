"""AIP-155 request ids: a retry returns the first successful answer; a reused id is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

from lockservice.errors import RequestIdReused
from lockservice.store.base import WriteTxn

__all__ = ["fingerprint", "run_once"]

T = TypeVar("T")


def fingerprint(method: str, request: Any) -> str:
    """A digest of everything in `request` but its request_id, bound to the method name; ""
    when the request has no request_id, as then nothing is ever compared with it."""
    if not getattr(request, "request_id", ""):
        return ""
    digest = hashlib.sha256(method.encode())
    for f in fields(request):
        if f.name == "request_id":
            continue
        value = getattr(request, f.name)
        # Raw bytes are hashed as they are: repr() of a 1 MiB value would cost 4 MiB.
        encoded = value if isinstance(value, bytes) else repr(value).encode()
        digest.update(f"\x00{f.name}:{type(value).__name__}:{len(encoded)}=".encode())
        digest.update(encoded)
    return digest.hexdigest()


def run_once(
    txn: WriteTxn,
    request_id: str,
    request_fingerprint: str,
    run: Callable[[], T],
    encode: Callable[[T], str],
    decode: Callable[[str], T],
) -> T:
    """Runs `run` inside the write body, unless `request_id` already has an answer.

    Only successes are remembered: a failed body rolls back, its answer with it, so a retry of
    a failed request is evaluated afresh against the current state.
    """
    if not request_id:
        return run()
    prior = txn.get_answer(request_id)
    if prior is not None:
        if prior.fingerprint != request_fingerprint:
            raise RequestIdReused(
                "request_id was already used for a different request",
                metadata={"field": "request_id", "request_id": request_id},
            )
        return decode(prior.answer)
    result = run()
    txn.save_answer(request_id, request_fingerprint, encode(result))
    return result
