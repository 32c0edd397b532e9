"""The sequential specification the checker linearizes against: resources and locks.

A resource is a register with versions: absent, or (value, version); version 1 on create, +1 per
write, absent again after a delete. A lock is its holder's token (or free), the highest token
granted so far, and two bounds on when the holder's lease runs out.

Leases expire by time, which no operation in the history records, so the model bounds it with
the times of the acquire that took the lock: the lease cannot run out before `acquire.call + ttl`
(it was granted after the call started), and must have run out by `horizon + ttl`, where the
horizon is the earliest return among the ops not linearized yet when the acquire is linearized
(the grant came before that return; for a known outcome, at the latest its own). `slack` widens
both bounds for clock differences between the server and the client. So an acquire with an unknown
outcome may hold the lock from any later moment on (a waiter granted after its client gave up),
but then only for one lease.

`step(state, op, horizon)` is deterministic: the state after `op` took effect with its recorded
outcome, or None with a sentence saying why it cannot here. An op with an unknown outcome is
stepped as if it succeeded; "it never took effect" is the checker's choice not to linearize it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

from tests.robustness.history import Op

__all__ = [
    "ABSENT",
    "FREE_LOCK",
    "NO_HOLDER",
    "LockState",
    "Model",
    "RegisterState",
    "State",
    "describe_state",
]

# A register: None when absent, else (value, version).
RegisterState = tuple[bytes, int] | None
# A lock: (holder's token, NO_HOLDER when free, 0 when granted to an acquire of unknown outcome;
# highest token granted so far, a lower bound when some grant's token is unknown; the time after
# which the holder's lease may have run out, -inf once any op still to come ends after it; the
# time by which it surely has).
LockState = tuple[int, int, float, float]
State = tuple[RegisterState | LockState, ...]

ABSENT: RegisterState = None
NO_HOLDER = -1
FREE_LOCK: LockState = (NO_HOLDER, 0, 0.0, 0.0)


def describe_state(names: tuple[str, ...], state: State) -> str:
    parts = []
    for name, value in zip(names, state, strict=True):
        if name.startswith("l:"):
            token, last, after, by = cast(LockState, value)
            if token == NO_HOLDER:
                parts.append(f"{name} free (last token {last})")
            else:
                shown = token if token else "unknown (an acquire of unknown outcome)"
                since = "may have run out" if after == -math.inf else f"may run out after {after:.3f}"
                parts.append(f"{name} held with token {shown}, lease {since}, surely out by {by:.3f}")
        elif value is None:
            parts.append(f"{name} absent")
        else:
            data, version = cast(tuple[bytes, int], value)
            parts.append(f"{name} = {data.decode(errors='replace')!r} v{version}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Model:
    slack: float = 0.5

    # -- leases --------------------------------------------------------------------------------

    @staticmethod
    def _possibly_expired(lock: LockState, at: Op) -> bool:
        """The holder's lease may have run out before `at` took effect."""
        return at.ret > lock[2]

    @staticmethod
    def _may_be_alive(lock: LockState, at: Op) -> bool:
        """The holder's lease may still be alive when `at` starts."""
        return at.call < lock[3]

    def _fence(self, lock: LockState, op: Op) -> tuple[bool, LockState, str]:
        """Whether `op`'s token may hold the lock when it takes effect; the lock state after a
        refusal (a refusal of the holder's own token means its lease had run out)."""
        token, last, _, _ = lock
        if token == NO_HOLDER:
            return False, lock, f"nobody holds {op.lock}"
        if token != op.token:
            shown = token if token else "an unknown token"
            return False, lock, f"{op.lock} is held with {shown}, not {op.token}"
        if not self._may_be_alive(lock, op):
            return False, (NO_HOLDER, last, 0.0, 0.0), f"the lease of token {op.token} surely expired before"
        return True, lock, ""

    # -- the step function ---------------------------------------------------------------------

    def step(self, names: tuple[str, ...], state: State, op: Op, horizon: float) -> tuple[State | None, str]:
        """`horizon`: the earliest return among the ops not linearized yet (`op`'s included)."""
        new = list(state)
        if op.kind in ("acquire", "release", "fenced_update"):
            i = names.index(f"l:{op.lock}")
            lock = cast(LockState, state[i])
            if op.kind == "fenced_update":
                after, why = self._fence_write(lock, op)
            else:
                after, why = self._step_lock(lock, op, horizon)
            if after is None:
                return None, why
            if after[0] != NO_HOLDER and after[2] < horizon:
                # Every op still to come ends after the horizon: "may have run out" for all of them.
                after = (after[0], after[1], -math.inf, after[3])
            new[i] = after
            if op.kind != "fenced_update" or (op.status == "fail" and op.reason == "STALE_FENCE"):
                return tuple(new), ""
        j = names.index(f"r:{op.key}")
        after_register, why = self._step_register(cast(RegisterState, state[j]), op)
        if why:
            return None, why
        new[j] = after_register
        return tuple(new), ""

    def _fence_write(self, lock: LockState, op: Op) -> tuple[LockState | None, str]:
        """The lock after a fenced write's fence check, or None when its outcome contradicts it."""
        allowed, after, why = self._fence(lock, op)
        if op.status == "fail" and op.reason == "STALE_FENCE":
            if allowed and self._possibly_expired(lock, op):
                return (NO_HOLDER, lock[1], 0.0, 0.0), ""
            if allowed:
                return None, f"refused as STALE_FENCE, but token {op.token} holds {op.lock}"
            return after, ""
        if not allowed:
            return None, f"a fenced write getting past its fence needs its token to hold the lock, but {why}"
        return lock, ""

    def _step_lock(self, lock: LockState, op: Op, horizon: float) -> tuple[LockState | None, str]:
        token, last, _, _ = lock
        if op.kind == "acquire":
            if op.status == "fail":
                if op.reason != "LOCK_HELD":
                    return None, f"unexpected refusal {op.reason}"
                if token == NO_HOLDER:
                    return None, f"refused as LOCK_HELD, but nobody holds {op.lock}"
                if not self._may_be_alive(lock, op):
                    return None, "refused as LOCK_HELD, but the holder's lease surely expired"
                return lock, ""
            if token != NO_HOLDER and not self._possibly_expired(lock, op):
                shown = token if token else "an unknown token"
                return None, f"{op.lock} is held with {shown}, its lease alive"
            bounds = (op.call + op.ttl - self.slack, min(op.ret, horizon) + op.ttl + self.slack)
            if op.status == "unknown":
                return (0, last + 1, *bounds), ""
            assert op.token is not None
            if op.token <= last:
                return None, f"token {op.token} is not above the last token granted, {last}"
            return (op.token, op.token, *bounds), ""
        # release
        allowed, after, why = self._fence(lock, op)
        if op.status == "fail":
            if op.reason != "LOCK_NOT_HELD":
                return None, f"unexpected refusal {op.reason}"
            if allowed and self._possibly_expired(lock, op):
                return (NO_HOLDER, last, 0.0, 0.0), ""
            if allowed:
                return None, f"refused as LOCK_NOT_HELD, but token {op.token} holds {op.lock}"
            return after, ""
        if not allowed:
            return None, f"a release succeeding needs its token to hold the lock, but {why}"
        return (NO_HOLDER, last, 0.0, 0.0), ""

    @staticmethod
    def _step_register(register: RegisterState, op: Op) -> tuple[RegisterState, str]:
        """(state after, "") or (anything, why not)."""
        shown = "absent" if register is None else f"at v{register[1]}"
        if op.kind == "get":
            if op.status == "fail":
                if op.reason != "RESOURCE_NOT_FOUND":
                    return register, f"unexpected refusal {op.reason}"
                return register, "" if register is None else f"read as missing, but {op.key} is {shown}"
            if register is None:
                return register, f"read {op.value!r} v{op.version}, but {op.key} is absent"
            if register != (op.value, op.version):
                data, version = register
                return register, f"read {op.value!r} v{op.version}, but {op.key} is {data!r} v{version}"
            return register, ""
        if op.status == "fail":
            return register, _why_refusal_wrong(register, op)
        assert op.value is not None or op.kind == "delete"
        # Succeeded (or stepped as if it had): preconditions, then the new state.
        if op.kind == "create":
            if register is not None:
                return register, f"a create succeeding needs {op.key} absent, but it is {shown}"
            after: RegisterState = (op.value, 1)  # type: ignore[assignment]
        elif op.kind in ("update", "delete", "fenced_update"):
            if register is None:
                return register, f"a {op.kind} succeeding needs {op.key} present, but it is absent"
            if op.expected_version is not None and register[1] != op.expected_version:
                return register, f"expected v{op.expected_version}, but {op.key} is {shown}"
            after = None if op.kind == "delete" else (op.value, register[1] + 1)  # type: ignore[assignment]
        else:  # cas
            if not _cas_holds(register, op):
                return register, f"the compare-and-set's expectation fails: {op.key} is {shown}"
            after = (op.value, 1 if register is None else register[1] + 1)  # type: ignore[assignment]
        if op.status == "ok" and op.kind != "delete" and after is not None and op.version != after[1]:
            return register, f"answered v{op.version}, but the write would make v{after[1]}"
        return after, ""


def _why_refusal_wrong(register: RegisterState, op: Op) -> str:
    """ "" when a definite refusal of `op` is right in `register`, else why it is wrong."""
    shown = "absent" if register is None else f"at v{register[1]}"
    expected = {
        "create": "RESOURCE_EXISTS",
        "cas": "VALUE_MISMATCH",
    }.get(op.kind)
    if op.kind == "create":
        return "" if register is not None else f"refused as {op.reason}, but {op.key} is absent"
    if op.kind == "cas":
        holds = _cas_holds(register, op)
        if op.reason != expected:
            return f"unexpected refusal {op.reason}"
        return f"refused as {op.reason}, but the expectation holds: {op.key} is {shown}" if holds else ""
    # update, delete, fenced_update (a fenced write passed its fence when it gets here)
    if op.reason == "RESOURCE_NOT_FOUND":
        return "" if register is None else f"refused as missing, but {op.key} is {shown}"
    if op.reason == "VERSION_MISMATCH":
        if register is None or op.expected_version is None:
            return f"refused as VERSION_MISMATCH, but {op.key} is {shown}"
        if register[1] == op.expected_version:
            return f"refused as VERSION_MISMATCH, but {op.key} is at the expected v{op.expected_version}"
        return ""
    return f"unexpected refusal {op.reason}"


def _cas_holds(register: RegisterState, op: Op) -> bool:
    if op.expect_absent:
        return register is None
    return register is not None and register[0] == op.expected_value
