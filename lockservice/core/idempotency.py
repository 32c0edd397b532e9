"""AIP-155 request ids: a retry returns the first successful answer; a reused id is refused.

A request_id belongs to the caller's identity: answers are stored under `request_key`, the id
within the identity's owner tag, so one identity can neither read nor pre-claim another's ids.

Every mutation writes through `write_once` (or `run_once` inside a body of its own): the one
place where an answer is looked up, compared and saved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Generic, Protocol, TypeVar

from lockservice.core.ownership import owner_tag
from lockservice.errors import RequestIdReused
from lockservice.store.base import Store, StoredAnswer, WriteTxn

__all__ = [
    "Answer",
    "Once",
    "Pending",
    "Request",
    "check_same_request",
    "fingerprint",
    "first_answer",
    "request_key",
    "run_once",
    "write_once",
]

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


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    """How a request's answer is kept for its retries: encoded into the store, decoded back."""

    encode: Callable[[T], str]
    decode: Callable[[str], T]


class Pending:
    """A write body's outcome that is not the request's answer yet (a lock wait that joined
    the queue): the body commits, and nothing is remembered, as the answer comes later."""

    __slots__ = ()


P = TypeVar("P", bound=Pending)


@dataclass(frozen=True, slots=True)
class Once:
    """One request as idempotency sees it: where its answer is kept (`key`, "" without a
    request_id) and the fingerprint a retry must match."""

    request_id: str
    key: str
    fingerprint: str

    @classmethod
    def of(cls, method: str, request: Request) -> Once:
        return cls(
            request_id=request.request_id,
            key=request_key(request.request_id, request.owner),
            fingerprint=fingerprint(method, request),
        )

    def check_same(self, stored_fingerprint: str) -> None:
        """REQUEST_ID_REUSED unless what was stored under the request_id is this request."""
        check_same_request(stored_fingerprint, self.fingerprint, self.request_id)

    def first_answer(self, prior: StoredAnswer) -> str:
        """The stored answer, if it answered this same request; REQUEST_ID_REUSED if not."""
        return first_answer(prior, self.fingerprint, self.request_id)


def run_once(
    txn: WriteTxn,
    once: Once,
    run: Callable[[], T | P],
    answer: Answer[T],
    resume: Callable[[], P | None] | None = None,
) -> T | P:
    """Runs `run` inside the write body, unless the request's id already has an answer.

    `resume`, when given, is asked first (after the id is claimed): a request still under way
    (a lock wait queued by an earlier attempt) carries on from there instead of starting again.
    Only successes are remembered: a failed body rolls back, its answer with it, so a retry of
    a failed request is evaluated afresh against the current state; and a `Pending` outcome is
    not an answer, so it is not remembered either.
    """
    if not once.key:
        return run()
    txn.claim_request(once.key)
    if resume is not None:
        resumed = resume()
        if resumed is not None:
            return resumed
    prior = txn.get_answer(once.key)
    if prior is not None:
        return answer.decode(once.first_answer(prior))
    result = run()
    if not isinstance(result, Pending):
        txn.save_answer(once.key, once.fingerprint, answer.encode(result))
    return result


async def write_once(
    store: Store,
    once: Once,
    run: Callable[[WriteTxn], T | P],
    answer: Answer[T],
    resume: Callable[[WriteTxn], P | None] | None = None,
) -> T | P:
    """The idempotent write every mutation goes through: `run_once` in one store write."""

    def body(txn: WriteTxn) -> T | P:
        resumed = None if resume is None else (lambda: resume(txn))
        return run_once(txn, once, lambda: run(txn), answer, resumed)

    return await store.write(body)
