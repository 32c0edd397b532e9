"""Client workers: threads, each with its own gRPC channel, that call the service at random and
record every call into a shared `Recorder`.

Each call has a deadline, so a paused server gives an unknown outcome instead of a hang. A call
that never left the client (no connection to the server at all) is not recorded; a call that was
sent and got no answer (deadline, connection lost mid-call) is recorded as unknown.

With `retry=True`, a mutating call carries a `request_id` and is retried with the same id after an
unknown outcome, until it gets an answer or `retry_for` seconds pass; the history records the
whole retry loop as one op from the first call to the last answer (the server promises that a
retry returns the first answer). That is the scenario of the request_id deduplication fixes.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lockservice.v1 import lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.robustness.history import Recorder

__all__ = ["CHANNEL_OPTIONS", "Surprise", "Worker", "Workload", "classify", "create_fenced", "read_all"]

# Reconnect quickly after a restart: the default backoff grows to minutes.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
_DEFINITE = (grpc.StatusCode.ABORTED, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.NOT_FOUND)
_EXPECTED_UNKNOWN = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
)


@dataclass(frozen=True)
class Workload:
    """What the workers do: which keys and locks, how long a call may take, how locks are held."""

    keys: int = 4  # plain resources r0.. (create, get, update, cas, delete)
    locks: int = 2  # locks L0.., each fencing its own resource f0..
    ttl: int = 3  # seconds, the lease each acquire asks for
    deadline: float = 3.0  # seconds per call
    stale_holder: float = 0.05  # chance a holder sleeps past its lease before a fenced write
    retry: bool = False
    retry_for: float = 12.0

    def resource_keys(self) -> list[str]:
        return [f"r{i}" for i in range(self.keys)] + [f"f{i}" for i in range(self.locks)]


@dataclass(frozen=True)
class Surprise:
    """An answer no correct server gives to these calls (e.g. INTERNAL, INVALID_ARGUMENT)."""

    process: int
    kind: str
    code: str
    reason: str
    message: str


def classify(error: grpc.RpcError) -> tuple[str, str]:
    """("fail", reason) for a definite refusal, ("not_sent", "") when no connection was made,
    ("unknown", "") when the call may have taken effect, ("surprise", reason) otherwise."""
    code = error.code()
    status = rpc_status.from_call(error)
    reason = ""
    if status is not None:
        info = error_details_pb2.ErrorInfo()
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                detail.Unpack(info)
                reason = info.reason
    if code in _DEFINITE and reason:
        return "fail", reason
    details = (error.details() or "") + " " + (getattr(error, "debug_error_string", lambda: "")() or "")
    if code == grpc.StatusCode.UNAVAILABLE and (
        "failed to connect to all addresses" in details or "Connection refused" in details
    ):
        return "not_sent", ""
    if code in _EXPECTED_UNKNOWN:
        return "unknown", reason
    return "surprise", reason


@dataclass
class Worker:
    """One client process of the history. Call `thread()` and start it; set `stop` to end it."""

    process: int
    address: str
    recorder: Recorder
    rng: random.Random
    stop: threading.Event
    workload: Workload
    surprises: list[Surprise] = field(default_factory=list)
    _known: dict[str, tuple[bytes, int] | None] = field(default_factory=dict)
    _writes: int = 0

    def thread(self) -> threading.Thread:
        return threading.Thread(target=self.run, name=f"robustness-worker-{self.process}", daemon=True)

    def run(self) -> None:
        with grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS) as channel:
            self._resources = resource_pb2_grpc.ResourceServiceStub(channel)
            self._locks = lock_pb2_grpc.LockServiceStub(channel)
            while not self.stop.is_set():
                if self.rng.random() < 0.55:
                    self._resource_op(f"r{self.rng.randrange(self.workload.keys)}")
                else:
                    self._lock_session(self.rng.randrange(self.workload.locks))

    # -- recording a call ----------------------------------------------------------------------

    def _call(
        self,
        kind: str,
        rpc: Callable[..., Any],
        request: Any,
        fields: dict[str, Any],
        result: Callable[[Any], dict[str, Any]],
        timeout: float | None = None,
    ) -> tuple[str, Any]:
        """Calls and records; returns (status, reply or reason). Status `not_sent` is unrecorded."""
        op_id = self.recorder.invoke(self.process, kind, **fields)
        give_up = time.monotonic() + (self.workload.retry_for if self.workload.retry else 0.0)
        maybe_sent = False
        while True:
            try:
                reply = rpc(request, timeout=timeout or self.workload.deadline)
            except grpc.RpcError as error:
                outcome, reason = classify(error)
                if outcome == "surprise":
                    self.surprises.append(
                        Surprise(self.process, kind, str(error.code()), reason, error.details() or "")
                    )
                if outcome == "fail":
                    self.recorder.complete(op_id, "fail", reason=reason)
                    return "fail", reason
                maybe_sent = maybe_sent or outcome != "not_sent"
                if self.workload.retry and kind != "get" and time.monotonic() < give_up:
                    time.sleep(0.2)  # the same request, the same request_id
                    continue
                if not maybe_sent:
                    self.recorder.discard(op_id)
                    time.sleep(0.1)
                    return "not_sent", None
                self.recorder.complete(op_id, "unknown")
                time.sleep(0.2)  # the server is down or paused: do not spin
                return "unknown", None
            self.recorder.complete(op_id, "ok", **result(reply))
            return "ok", reply

    def _request_id(self) -> str:
        return uuid.uuid4().hex if self.workload.retry else ""

    def _value(self) -> bytes:
        self._writes += 1
        return f"p{self.process}-{self._writes}".encode()

    # -- resources -----------------------------------------------------------------------------

    def _resource_op(self, key: str) -> None:
        known = self._known.get(key)
        roll = self.rng.random()
        if roll < 0.35 or key not in self._known:
            self._get(key)
        elif known is None or roll < 0.45:
            self._create(key)
        elif roll < 0.70:
            self._update(key, known[1])
        elif roll < 0.92:
            self._cas(key, known[0])
        else:
            self._delete(key, known[1])

    def _get(self, key: str) -> None:
        status, reply = self._call(
            "get",
            self._resources.GetResource,
            resource_pb2.GetResourceRequest(key=key),
            {"key": key},
            lambda r: {"value": r.value, "version": r.version},
        )
        if status == "ok":
            self._known[key] = (reply.value, reply.version)
        elif status == "fail":
            self._known[key] = None

    def _written(self, key: str, status: str, reply: Any) -> None:
        if status == "ok":
            self._known[key] = (reply.value, reply.version)
        else:
            self._known.pop(key, None)  # read it again before the next write

    def _create(self, key: str) -> None:
        value = self._value()
        request = resource_pb2.CreateResourceRequest(key=key, value=value, request_id=self._request_id())
        status, reply = self._call(
            "create",
            self._resources.CreateResource,
            request,
            {"key": key, "value": value},
            lambda r: {"version": r.version},
        )
        self._written(key, status, reply)

    def _update(self, key: str, version: int) -> None:
        value = self._value()
        request = resource_pb2.UpdateResourceRequest(
            key=key, value=value, expected_version=version, request_id=self._request_id()
        )
        status, reply = self._call(
            "update",
            self._resources.UpdateResource,
            request,
            {"key": key, "value": value, "expected_version": version},
            lambda r: {"version": r.version},
        )
        self._written(key, status, reply)

    def _cas(self, key: str, expected: bytes) -> None:
        value = self._value()
        request = resource_pb2.CompareAndSetRequest(
            key=key, expected_value=expected, value=value, request_id=self._request_id()
        )
        status, reply = self._call(
            "cas",
            self._resources.CompareAndSet,
            request,
            {"key": key, "value": value, "expected_value": expected},
            lambda r: {"version": r.version},
        )
        self._written(key, status, reply)

    def _delete(self, key: str, version: int) -> None:
        request = resource_pb2.DeleteResourceRequest(
            key=key, expected_version=version, request_id=self._request_id()
        )
        status, _ = self._call(
            "delete",
            self._resources.DeleteResource,
            request,
            {"key": key, "expected_version": version},
            lambda r: {},
        )
        if status == "ok":
            self._known[key] = None
        else:
            self._known.pop(key, None)

    # -- locks ---------------------------------------------------------------------------------

    def _lock_session(self, index: int) -> None:
        """Acquire (sometimes waiting), a few fenced writes, release. Sometimes the holder sleeps
        past its lease first, as a paused holder would: its fenced write must then be refused."""
        name, key = f"L{index}", f"f{index}"
        ttl = self.workload.ttl
        wait = self.rng.choice([0.0, 0.0, 0.5, 1.5])
        request = lock_pb2.AcquireLockRequest(
            name=name,
            ttl_seconds=ttl,
            holder=f"p{self.process}",
            wait_timeout=Duration(seconds=int(wait), nanos=int(wait % 1 * 1e9)),
            request_id=self._request_id(),
        )
        status, reply = self._call(
            "acquire",
            self._locks.AcquireLock,
            request,
            {"lock": name, "ttl": float(ttl)},
            lambda r: {"token": r.token},
            timeout=self.workload.deadline + wait,
        )
        if status != "ok":
            return
        token = reply.token
        for _ in range(self.rng.randint(1, 3)):
            if self.rng.random() < self.workload.stale_holder:
                self.stop.wait(ttl + 1.0)  # cut short at the end of the run: the write still goes
            value = self._value()
            update = resource_pb2.UpdateResourceRequest(
                key=key,
                value=value,
                fence=lock_pb2.Fence(lock_name=name, token=token),
                request_id=self._request_id(),
            )
            self._call(
                "fenced_update",
                self._resources.UpdateResource,
                update,
                {"key": key, "lock": name, "token": token, "value": value},
                lambda r: {"version": r.version},
            )
            if self.rng.random() < 0.3:
                self._get(key)
        release = lock_pb2.ReleaseLockRequest(name=name, token=token, request_id=self._request_id())
        self._call("release", self._locks.ReleaseLock, release, {"lock": name, "token": token}, lambda r: {})


def read_all(address: str, recorder: Recorder, process: int, workload: Workload, attempts: int = 20) -> None:
    """The final reads: every resource once, recorded by `process`, retried until answered."""
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        for key in workload.resource_keys():
            for _ in range(attempts):
                op_id = recorder.invoke(process, "get", key=key)
                try:
                    reply = resources.GetResource(resource_pb2.GetResourceRequest(key=key), timeout=10)
                except grpc.RpcError as error:
                    outcome, reason = classify(error)
                    if outcome == "fail":
                        recorder.complete(op_id, "fail", reason=reason)
                        break
                    recorder.discard(op_id)
                    time.sleep(0.5)
                    continue
                recorder.complete(op_id, "ok", value=reply.value, version=reply.version)
                break


def create_fenced(address: str, recorder: Recorder, process: int, workload: Workload) -> None:
    """Creates the resources the locks fence (f0..), recorded by `process`."""
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        for index in range(workload.locks):
            key, value = f"f{index}", b"initial"
            op_id = recorder.invoke(process, "create", key=key, value=value)
            reply = resources.CreateResource(
                resource_pb2.CreateResourceRequest(key=key, value=value), timeout=10
            )
            recorder.complete(op_id, "ok", version=reply.version)
