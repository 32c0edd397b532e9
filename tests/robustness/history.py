"""A history of client operations: what each call asked, when it started, when and how it ended.

Pure data, no gRPC: the live clients record into it and the checker's unit tests write it by hand.

An operation ends in one of three ways:
- `ok`: the server answered and the call took effect (or, for a read, saw what it returned);
- `fail`: the server answered with a definite refusal (`reason` is the ErrorInfo reason, e.g.
  VERSION_MISMATCH): the call did not change anything;
- `unknown`: timeout, UNAVAILABLE, connection lost mid-call. The call may have taken effect, at
  any moment after it started, even long after the client gave up, so its end is `math.inf`.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["INF", "KINDS", "WRITES", "Op", "Recorder", "describe_all", "load", "save"]

INF = math.inf
KINDS = ("get", "create", "update", "cas", "delete", "acquire", "release", "fenced_update")
# Kinds that may change a resource when they succeed.
WRITES = ("create", "update", "cas", "delete", "fenced_update")


@dataclass(frozen=True)
class Op:
    """One call. `key` names the resource it touches, `lock` the lock (both for a fenced update).

    Arguments: `value` (written, or read back by a successful get), `expected_version` (update and
    delete), `expected_value` / `expect_absent` (cas), `token` (release and fenced update: the token
    sent; acquire: the token granted), `ttl` (acquire: the lease's TTL in seconds).
    Results: `status`, `version` (the version a write produced or a read saw), `reason`.
    """

    id: int
    process: int
    kind: str
    call: float
    ret: float
    status: str
    key: str = ""
    lock: str = ""
    value: bytes | None = None
    expected_version: int | None = None
    expected_value: bytes | None = None
    expect_absent: bool = False
    token: int | None = None
    ttl: float = 0.0
    version: int | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")
        if self.status not in ("ok", "fail", "unknown"):
            raise ValueError(f"unknown status {self.status!r}")
        if (self.status == "unknown") != (self.ret == INF):
            raise ValueError(f"op {self.id}: an unknown outcome ends at infinity, and only it")
        if self.ret < self.call:
            raise ValueError(f"op {self.id} returns before it is called")

    @property
    def objects(self) -> tuple[str, ...]:
        """The names of the objects (resources `r:KEY`, locks `l:NAME`) this op touches."""
        names = []
        if self.key:
            names.append(f"r:{self.key}")
        if self.lock:
            names.append(f"l:{self.lock}")
        return tuple(names)

    def describe(self) -> str:
        """One line: `#12 p3 [1.204, 1.251] update k1 'a' expect v4 -> ok v5`."""
        end = "inf" if self.ret == INF else f"{self.ret:.3f}"
        parts = [f"#{self.id} p{self.process} [{self.call:.3f}, {end}] {self.kind}"]
        if self.key:
            parts.append(self.key)
        if self.lock and self.kind != "fenced_update":
            parts.append(self.lock)
        if self.kind == "fenced_update":
            parts.append(f"fence {self.lock}#{self.token}")
        if self.kind in ("release",):
            parts.append(f"token {self.token}")
        if self.kind in WRITES and self.kind != "delete" and self.value is not None:
            parts.append(repr(self.value.decode(errors="replace")))
        if self.expected_version is not None:
            parts.append(f"expect v{self.expected_version}")
        if self.expected_value is not None:
            parts.append(f"expect {self.expected_value.decode(errors='replace')!r}")
        if self.expect_absent:
            parts.append("expect absent")
        if self.kind == "acquire":
            parts.append(f"ttl {self.ttl:g}s")
        outcome = self.status
        if self.status == "ok":
            if self.kind == "get" and self.value is not None:
                outcome += f" {self.value.decode(errors='replace')!r}"
            if self.version is not None:
                outcome += f" v{self.version}"
            if self.kind == "acquire":
                outcome += f" token {self.token}"
        elif self.status == "fail":
            outcome += f" {self.reason}"
        parts.append(f"-> {outcome}")
        return " ".join(parts)


def describe_all(ops: list[Op]) -> str:
    return "\n".join("  " + op.describe() for op in sorted(ops, key=lambda op: (op.call, op.id)))


class Recorder:
    """Thread-safe: workers `invoke` before a call and `complete` after it; times are seconds
    since the recorder was made (monotonic clock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._pending: dict[int, Op] = {}
        self._done: list[Op] = []
        self._next_id = 0

    def now(self) -> float:
        return time.monotonic() - self._start

    def invoke(self, process: int, kind: str, **fields: Any) -> int:
        """Records the start of a call; returns its id for `complete`."""
        with self._lock:
            op_id = self._next_id
            self._next_id += 1
            # Pending until completed: an unknown outcome with an open end.
            self._pending[op_id] = Op(
                id=op_id, process=process, kind=kind, call=self.now(), ret=INF, status="unknown", **fields
            )
            return op_id

    def complete(self, op_id: int, status: str, **results: Any) -> Op:
        """Records how call `op_id` ended: `ok` / `fail` now, or `unknown` (open end)."""
        with self._lock:
            op = self._pending.pop(op_id)
            end = INF if status == "unknown" else max(self.now(), op.call)
            done = replace(op, ret=end, status=status, **results)
            self._done.append(done)
            return done

    def discard(self, op_id: int) -> None:
        """Forgets a call that certainly never reached the server (e.g. no connection)."""
        with self._lock:
            self._pending.pop(op_id)

    def history(self) -> list[Op]:
        """Every op so far, completed or still pending (pending ones are unknown)."""
        with self._lock:
            return sorted([*self._done, *self._pending.values()], key=lambda op: op.id)


def save(ops: list[Op], path: str) -> None:
    """Writes a history as JSON lines (values as latin-1 text), for `load` and offline checking."""
    with open(path, "w") as out:
        for op in ops:
            row = {**asdict(op), "ret": None if op.ret == INF else op.ret}
            for name in ("value", "expected_value"):
                if row[name] is not None:
                    row[name] = row[name].decode("latin-1")
            out.write(json.dumps(row) + "\n")


def load(path: str) -> list[Op]:
    ops = []
    with open(path) as rows:
        for line in rows:
            row = json.loads(line)
            row["ret"] = INF if row["ret"] is None else row["ret"]
            for name in ("value", "expected_value"):
                if row[name] is not None:
                    row[name] = row[name].encode("latin-1")
            ops.append(Op(**row))
    return ops
