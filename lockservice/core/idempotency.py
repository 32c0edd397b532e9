"""AIP-155 request ids: a retry returns the first successful answer; a reused id is refused.

A request_id belongs to the caller's identity: answers are stored under `request_key`, the id
within the identity's owner tag, so one identity can neither read nor pre-claim another's ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import fields
from typing import Any, Protocol, TypeVar

from lockservice.core.ownership import owner_tag
from lockservice.errors import RequestIdReused
from lockservice.store.base import StoredAnswer, WriteTxn

__all__ = ["Request", "check_same_request", "fingerprint", "first_answer", "request_key", "run_once"]

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


def request_key(request_id: str, owner: str | None) -> str:
    """Where the answer to `request_id` sent by `owner` is kept ("" without a request_id).

    Without authentication it is the id itself. With it, the identity's owner tag, a space and
    the id: a request_id never contains a space, so no id of one identity (or of a caller
    without one) can name another identity's answer."""
    tag = owner_tag(owner)
    return f"{tag} {request_id}" if request_id and tag else request_id


def check_same_request(stored_fingerprint: str, request_fingerprint: str, request_id: str) -> None:
    """REQUEST_ID_REUSED unless what was stored under the request_id is this same request."""
    if stored_fingerprint != request_fingerprint:
        raise RequestIdReused(
            "request_id was already used for a different request",
            metadata={"field": "request_id", "request_id": request_id},
        )


def first_answer(prior: StoredAnswer, request_fingerprint: str, request_id: str) -> str:
    """The stored answer, if it answered this same request; REQUEST_ID_REUSED if not."""
    check_same_request(prior.fingerprint, request_fingerprint, request_id)
    return prior.answer


class Request(Protocol):
    """A mutating request: its id, and the identity that sent it."""

    @property
    def request_id(self) -> str: ...

    @property
    def owner(self) -> str | None: ...


def run_once(
    txn: WriteTxn,
    request: Request,
    request_fingerprint: str,
    run: Callable[[], T],
    encode: Callable[[T], str],
    decode: Callable[[str], T],
) -> T:
    """Runs `run` inside the write body, unless the request's id already has an answer.

    Only successes are remembered: a failed body rolls back, its answer with it, so a retry of
    a failed request is evaluated afresh against the current state.
    """
    key = request_key(request.request_id, request.owner)
    if not key:
        return run()
    txn.claim_request(key)
    prior = txn.get_answer(key)
    if prior is not None:
        return decode(first_answer(prior, request_fingerprint, request.request_id))
    result = run()
    txn.save_answer(key, request_fingerprint, encode(result))
    return result
