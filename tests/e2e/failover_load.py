"""Load for failover tests: creates, compare-and-set increments and lock hand-overs, each call
recorded (what, when, how long, which code), each write retried under its request_id until it
is answered, so an outcome the failover left unknown is settled by the retry.

Every call carries its own deadline (`CALL_SECONDS`). A call may succeed, or fail with
UNAVAILABLE / STORE_UNAVAILABLE (the database is switching), or with the conflict its operation
expects (a compare-and-set that lost a race, a lock wait that ended unserved); anything else is
recorded and fails the test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from grpc_status import rpc_status

from lockservice.v1 import lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.grpc_errors import decode

__all__ = ["CALL_SECONDS", "Calls", "Grant", "Outcome", "create_loop", "increment_loop", "lock_loop"]

T = TypeVar("T")

# Each call's deadline: what a client would set, and what the server must answer within.
CALL_SECONDS = 2.0
# A queued AcquireLock gives up (ABORTED / LOCK_HELD) after this, well inside its deadline.
_LOCK_WAIT = Duration(nanos=500_000_000)


@dataclass(frozen=True)
class Outcome:
    """One call: its operation, when it started and ended (time.monotonic()), and its answer."""

    operation: str
    started: float
    ended: float
    code: grpc.StatusCode
    reason: str


@dataclass(frozen=True)
class Grant:
    """A lock acquisition the client was told of: from its answer to the moment it asked to release."""

    token: int
    holder: str
    granted: float
    releasing: float
    written: bool  # its fenced write was acknowledged (else the load stopped first)


class Unexpected(Exception):
    """A call failed with something other than UNAVAILABLE or the conflict its operation expects."""


@dataclass
class Calls:
    """What the load saw, shared by its threads (every list append is under `guard`)."""

    stop: threading.Event = field(default_factory=threading.Event)
    guard: threading.Lock = field(default_factory=threading.Lock)
    outcomes: list[Outcome] = field(default_factory=list)
    created: dict[str, bytes] = field(default_factory=dict)
    increments: list[tuple[int, bytes]] = field(default_factory=list)  # (version, value) answered
    grants: list[Grant] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def successes(self, operation: str, after: float = 0.0) -> int:
        with self.guard:
            return sum(
                1
                for o in self.outcomes
                if o.operation == operation and o.code == grpc.StatusCode.OK and o.started >= after
            )

    def unavailable(self, after: float = 0.0) -> int:
        with self.guard:
            return sum(1 for o in self.outcomes if o.code == grpc.StatusCode.UNAVAILABLE and o.ended >= after)

    def call(
        self,
        operation: str,
        method: Callable[..., T],
        request: Any,
        *,
        expected: frozenset[str] = frozenset(),
    ) -> tuple[T | None, Outcome]:
        """One call under `CALL_SECONDS`: its answer (None when it failed) and its outcome.
        Unexpected unless it succeeded, failed UNAVAILABLE / STORE_UNAVAILABLE, or failed with a
        reason in `expected`."""
        started = time.monotonic()
        try:
            reply = method(request, timeout=CALL_SECONDS)
        except grpc.RpcError as error:
            ended = time.monotonic()
            reason = decode(error).reason if rpc_status.from_call(error) is not None else ""
            outcome = Outcome(operation, started, ended, error.code(), reason)
            with self.guard:
                self.outcomes.append(outcome)
            unavailable = (error.code(), reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")
            if unavailable or reason in expected:
                return None, outcome
            raise Unexpected(
                f"{operation}: {error.code().name} {reason or '(no ErrorInfo)'} after "
                f"{ended - started:.2f} s: {error.details()}"
            ) from None
        outcome = Outcome(operation, started, time.monotonic(), grpc.StatusCode.OK, "")
        with self.guard:
            self.outcomes.append(outcome)
        return reply, outcome

    def retried(
        self,
        operation: str,
        method: Callable[..., T],
        request: Any,
        *,
        expected: frozenset[str] = frozenset(),
    ) -> T | None:
        """`call` again while it answers UNAVAILABLE (the request keeps its request_id, so a write
        the failover interrupted is applied once): the answer, or None when it failed with an
        expected reason (or the load stopped first)."""
        while not self.stop.is_set():
            reply, outcome = self.call(operation, method, request, expected=expected)
            if outcome.code != grpc.StatusCode.UNAVAILABLE:
                return reply
            time.sleep(0.05)  # a client's back-off between retries, not synchronisation
        return None

    def run(self, loop: Callable[..., None], *args: Any) -> threading.Thread:
        """Starts `loop(self, *args)` on a thread; an Unexpected failure is recorded, not lost."""

        def guarded() -> None:
            try:
                loop(self, *args)
            except Unexpected as error:
                with self.guard:
                    self.errors.append(str(error))
                self.stop.set()

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        return thread


def create_loop(calls: Calls, channel: grpc.Channel, prefix: str) -> None:
    """Creates new keys, one after another, each with a value of its own."""
    stub = resource_pb2_grpc.ResourceServiceStub(channel)
    number = 0
    while not calls.stop.is_set():
        key, value = f"{prefix}/{number}", f"{prefix}:{number}".encode()
        request = resource_pb2.CreateResourceRequest(key=key, value=value, request_id=str(uuid.uuid4()))
        if calls.retried("create", stub.CreateResource, request) is not None:
            with calls.guard:
                calls.created[key] = value
        number += 1


def increment_loop(calls: Calls, channel: grpc.Channel, key: str, writer: str) -> None:
    """Read the counter, then compare-and-set it to a value of this writer's own."""
    stub = resource_pb2_grpc.ResourceServiceStub(channel)
    number = 0
    while not calls.stop.is_set():
        current = calls.retried("get", stub.GetResource, resource_pb2.GetResourceRequest(key=key))
        if current is None:
            continue
        value = f"{writer}:{number}".encode()
        number += 1
        request = resource_pb2.CompareAndSetRequest(
            key=key, expected_version=current.version, value=value, request_id=str(uuid.uuid4())
        )
        written = calls.retried("cas", stub.CompareAndSet, request, expected=frozenset({"VERSION_MISMATCH"}))
        if written is not None:
            with calls.guard:
                calls.increments.append((written.version, value))


def lock_loop(calls: Calls, channel: grpc.Channel, name: str, holder: str, guarded_prefix: str) -> None:
    """Acquire the lock, write a key fenced by its token, release it; again."""
    locks = lock_pb2_grpc.LockServiceStub(channel)
    resources = resource_pb2_grpc.ResourceServiceStub(channel)
    while not calls.stop.is_set():
        acquire = lock_pb2.AcquireLockRequest(
            name=name, holder=holder, ttl_seconds=60, wait_timeout=_LOCK_WAIT, request_id=str(uuid.uuid4())
        )
        lock = calls.retried("acquire", locks.AcquireLock, acquire, expected=frozenset({"LOCK_HELD"}))
        if lock is None:
            continue
        granted = time.monotonic()
        fenced = resource_pb2.UpdateResourceRequest(
            key=f"{guarded_prefix}/{lock.token}",
            value=holder.encode(),
            allow_missing=True,
            fence=lock_pb2.Fence(lock_name=name, token=lock.token),
            request_id=str(uuid.uuid4()),
        )
        written = calls.retried("fenced-write", resources.UpdateResource, fenced) is not None
        releasing = time.monotonic()
        release = lock_pb2.ReleaseLockRequest(name=name, token=lock.token, request_id=str(uuid.uuid4()))
        # Retried past `stop`: a lock left held would block the other holders' last round.
        while calls.call("release", locks.ReleaseLock, release)[0] is None:
            time.sleep(0.05)
        with calls.guard:
            calls.grants.append(Grant(lock.token, holder, granted, releasing, written))
