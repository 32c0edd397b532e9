"""Checks a recorded history: linearizability per object, and four safety properties stated directly.

Linearizability: the history is split into independent parts (ops that share a resource or a lock
end up in one part; a fenced write joins its resource to its lock), and each part is searched as
Wing and Gong did, with Lowe's memo of visited (linearized set, model state) pairs, the variant
Porcupine uses. An op with an unknown outcome has an open end: it may be linearized anywhere
after its call, as having taken effect, or never (it did not take effect).

The direct checks say in one sentence what went wrong, where the search can only say "no order
explains this":
- durability: a final read sees every acknowledged write that no delete can have undone;
- tokens: fencing tokens of granted locks only increase, in real time, per lock;
- two holders: no lock is granted while an earlier grant is surely still held;
- stale fence: no fenced write succeeds after its token was surely superseded, released or expired.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field, replace

from tests.robustness.history import INF, Op, describe_all
from tests.robustness.model import ABSENT, FREE_LOCK, Model, State, describe_state

__all__ = [
    "DEFAULT_BUDGET",
    "Report",
    "Undecided",
    "Violation",
    "check",
    "check_linearizable",
    "forget_newest_write",
]

DEFAULT_BUDGET = 2_000_000  # search steps per part, before the checker gives up (Undecided)


class Undecided(Exception):
    """The search ran out of steps: neither a linearization nor a proof there is none."""


@dataclass(frozen=True)
class Violation:
    check: str
    message: str
    ops: tuple[Op, ...] = ()

    def __str__(self) -> str:
        text = f"[{self.check}] {self.message}"
        if self.ops:
            text += "\n" + describe_all(list(self.ops))
        return text


@dataclass
class Report:
    ops: int = 0
    unknown: int = 0
    parts: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def explain(self) -> str:
        head = f"{self.ops} ops ({self.unknown} with unknown outcome) in {self.parts} independent parts"
        if self.ok:
            return head + ": linearizable, no violation"
        return head + f": {len(self.violations)} violation(s)\n" + "\n\n".join(map(str, self.violations))


def check(
    history: list[Op], *, final_process: int | None = None, slack: float = 0.5, budget: int = DEFAULT_BUDGET
) -> Report:
    """Every check on `history`. Reads by `final_process` (made after every other op ended, once
    the faults stopped) are the final reads the durability check compares against."""
    ops = [op for op in history if not (op.kind == "get" and op.status == "unknown")]
    report = Report(ops=len(ops), unknown=sum(op.status == "unknown" for op in ops))
    report.violations += check_durability(ops, final_process)
    report.violations += check_tokens(ops)
    report.violations += check_single_holder(ops, slack)
    report.violations += check_fenced_writes(ops, slack)
    parts = partition(ops)
    report.parts = len(parts)
    for part in parts:
        try:
            violation = check_linearizable(part, slack=slack, budget=budget)
        except Undecided as undecided:
            violation = Violation("undecided", str(undecided))
        if violation is not None:
            report.violations.append(violation)
    return report


# -- the direct checks -----------------------------------------------------------------------


def check_durability(ops: list[Op], final_process: int | None) -> list[Violation]:
    if final_process is None:
        return []
    violations = []
    finals = [op for op in ops if op.process == final_process and op.kind == "get" and op.status != "unknown"]
    for final in finals:
        for write in _must_see(final, ops):
            assert write.version is not None
            seen = "missing" if final.status == "fail" else f"v{final.version}"
            if final.status == "fail" or (final.version or 0) < write.version:
                violations.append(
                    Violation(
                        "durability",
                        f"acknowledged write lost: #{write.id} made {write.key} v{write.version}, "
                        f"no delete can have undone it, yet the final read saw {seen}",
                        (write, final),
                    )
                )
    return violations


def _must_see(final: Op, ops: list[Op]) -> list[Op]:
    """The writes `final` must see: acknowledged before it, and no delete can have come after them."""
    deletes = [op for op in ops if op.key == final.key and op.kind == "delete" and op.status != "fail"]
    return [
        write
        for write in ops
        if write.key == final.key
        and write.status == "ok"
        and write.kind not in ("get", "delete")
        and write.ret <= final.call
        and not any(d.ret > write.call for d in deletes)
    ]


def forget_newest_write(history: list[Op], final_process: int) -> list[Op]:
    """`history` with a final read made to miss the newest acknowledged write it must see: the
    corruption a live run feeds back to the checker to prove it would notice a lost write. Not one
    version less than the read saw: that version may have come from a write whose client never
    heard back, and then the one below it can still hold every acknowledged write."""
    newest: dict[int, tuple[int, Op]] = {}
    for final in history:
        if final.process == final_process and final.kind == "get" and final.status == "ok":
            versions = [write.version or 0 for write in _must_see(final, history)]
            if versions:
                newest[final.id] = (max(versions), final)
    if not newest:
        raise ValueError("no final read must see an acknowledged write")
    version, forgetful = max(newest.values(), key=lambda pair: pair[0])
    return [replace(op, version=version - 1) if op is forgetful else op for op in history]


def _grants(ops: list[Op]) -> dict[str, list[Op]]:
    grants: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind == "acquire" and op.status == "ok":
            grants[op.lock].append(op)
    return grants


def check_tokens(ops: list[Op]) -> list[Violation]:
    violations = []
    for lock, granted in _grants(ops).items():
        by_token: dict[int, Op] = {}
        for op in granted:
            assert op.token is not None
            if op.token in by_token:
                violations.append(
                    Violation("tokens", f"token {op.token} of {lock} granted twice", (by_token[op.token], op))
                )
            by_token[op.token] = op
        for earlier in granted:
            for later in granted:
                if earlier.ret < later.call and earlier.token >= later.token:  # type: ignore[operator]
                    violations.append(
                        Violation(
                            "tokens",
                            f"token of {lock} went backwards: #{later.id} got {later.token} after "
                            f"#{earlier.id} had got {earlier.token}",
                            (earlier, later),
                        )
                    )
    return violations


def _held_until(grant: Op, ops: list[Op], slack: float) -> float:
    """The time until which `grant` surely still held its lock: its lease could not expire before
    `call + ttl`, and nothing else ends a hold but a release with its token."""
    end = grant.call + grant.ttl - slack
    for op in ops:
        if op.kind == "release" and op.lock == grant.lock and op.token == grant.token:
            end = min(end, op.call)
    return end


def check_single_holder(ops: list[Op], slack: float) -> list[Violation]:
    violations = []
    for lock, granted in _grants(ops).items():
        for earlier in granted:
            until = _held_until(earlier, ops, slack)
            for later in granted:
                if later.token > earlier.token and later.ret < until:  # type: ignore[operator]
                    violations.append(
                        Violation(
                            "two holders",
                            f"{lock} granted to #{later.id} (token {later.token}) by {later.ret:.3f}, while "
                            f"#{earlier.id} (token {earlier.token}) surely held it until {until:.3f}",
                            (earlier, later),
                        )
                    )
    return violations


def check_fenced_writes(ops: list[Op], slack: float) -> list[Violation]:
    violations = []
    grants = _grants(ops)
    for write in ops:
        if write.kind != "fenced_update" or write.status != "ok":
            continue
        for grant in grants.get(write.lock, []):
            assert grant.token is not None and write.token is not None
            if grant.token > write.token and grant.ret < write.call:
                why = f"token {grant.token} was granted (#{grant.id}) before the write started"
            elif grant.token == write.token and write.call > grant.ret + grant.ttl + slack:
                why = f"token {write.token}'s {grant.ttl:g}s lease had surely expired"
            else:
                continue
            violations.append(
                Violation(
                    "stale fence",
                    f"stale holder's write accepted: #{write.id} fenced with {write.lock}#{write.token} "
                    f"succeeded, but {why}",
                    (grant, write),
                )
            )
        for release in ops:
            if (
                release.kind == "release"
                and release.status == "ok"
                and release.lock == write.lock
                and release.token == write.token
                and release.ret < write.call
            ):
                violations.append(
                    Violation(
                        "stale fence",
                        f"stale holder's write accepted: #{write.id} fenced with {write.lock}#{write.token} "
                        f"succeeded after that token was released (#{release.id})",
                        (release, write),
                    )
                )
    return violations


# -- linearizability -------------------------------------------------------------------------


def partition(ops: list[Op]) -> list[list[Op]]:
    """Ops grouped so that no two groups share an object."""
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        while parent.setdefault(name, name) != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for op in ops:
        first, *rest = op.objects
        for other in rest:
            parent[find(other)] = find(first)
    groups: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        groups[find(op.objects[0])].append(op)
    return [groups[root] for root in sorted(groups)]


class _Entry:
    __slots__ = ("is_call", "match", "next", "op", "position", "prev")

    def __init__(self, op: Op, position: int, is_call: bool) -> None:
        self.op = op
        self.position = position
        self.is_call = is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


@dataclass
class _Outcome:
    ok: bool
    deepest: list[Op]  # the longest linearized prefix found
    state: State  # the model state after it
    blocking: Op | None  # an op that had to be linearized next and could not be


def _search(names: tuple[str, ...], ops: list[Op], model: Model, budget: int) -> _Outcome:
    initial: State = tuple(FREE_LOCK if name.startswith("l:") else ABSENT for name in names)
    events = []
    for position, op in enumerate(ops):
        events.append((op.call, 0, position, op, True))
        if op.ret != INF:
            events.append((op.ret, 1, position, op, False))
    events.sort(key=lambda event: event[:3])
    head = _Entry(ops[0], -1, True) if ops else None
    if head is None:
        return _Outcome(True, [], initial, None)
    calls: dict[int, _Entry] = {}
    previous = head
    for _, _, position, op, is_call in events:
        entry = _Entry(op, position, is_call)
        if is_call:
            calls[position] = entry
        else:
            calls[position].match = entry
        previous.next, entry.prev = entry, previous
        previous = entry

    def lift(entry: _Entry) -> None:
        assert entry.prev is not None
        entry.prev.next = entry.next
        if entry.next is not None:
            entry.next.prev = entry.prev
        if entry.match is not None:
            match = entry.match
            assert match.prev is not None
            match.prev.next = match.next
            if match.next is not None:
                match.next.prev = match.prev

    def unlift(entry: _Entry) -> None:
        if entry.match is not None:
            match = entry.match
            assert match.prev is not None
            match.prev.next = match
            if match.next is not None:
                match.next.prev = match
        assert entry.prev is not None
        entry.prev.next = entry
        if entry.next is not None:
            entry.next.prev = entry

    def candidates() -> tuple[list[_Entry], _Entry | None]:
        """The ops that may come next (called before the first pending return), and that return.

        Ops with a known outcome come first: an unknown op is linearized only when nothing else
        will do, which keeps the search short when a crash cut many calls off. Unknown acquires
        of one lock whose lease may have run out already by the first pending return have the
        same effect from here on (the lock held, token unknown, one lease from now at most), so
        only the first of them is a candidate: the others can take its place later."""
        known: list[_Entry] = []
        unknown: list[_Entry] = []
        entry = head.next
        while entry is not None and entry.is_call:
            (known if entry.match is not None else unknown).append(entry)
            entry = entry.next
        horizon = entry.op.ret if entry is not None else INF
        alike: set[tuple[str, float]] = set()
        for candidate in unknown:
            op = candidate.op
            if op.kind == "acquire" and op.call + op.ttl - model.slack < horizon:
                if (op.lock, op.ttl) in alike:
                    continue
                alike.add((op.lock, op.ttl))
            known.append(candidate)
        return known, entry

    seen: set[tuple[int, State]] = set()
    # Each frame: the candidates at that depth, the index of the one taken, the state before it,
    # the first pending return there.
    stack: list[tuple[list[_Entry], int, State, _Entry]] = []
    state = initial
    linearized = 0
    best = _Outcome(False, [], initial, None)
    steps = 0
    options, blocked = candidates()
    index = 0
    while blocked is not None:
        while index < len(options):
            steps += 1
            if steps > budget:
                raise Undecided(
                    f"no verdict after {budget} search steps on {', '.join(names)} ({len(ops)} ops)"
                )
            entry = options[index]
            after, _ = model.step(names, state, entry.op, blocked.op.ret)
            bits = linearized | (1 << entry.position)
            if after is not None and (bits, after) not in seen:
                seen.add((bits, after))
                stack.append((options, index, state, blocked))
                state, linearized = after, bits
                lift(entry)
                options, blocked = candidates()
                index = 0
                break
            index += 1
        else:
            # Nothing can come next, yet `blocked` returned: backtrack.
            if len(stack) >= len(best.deepest):
                best = _Outcome(False, [frame[0][frame[1]].op for frame in stack], state, blocked.op)
            if not stack:
                return best
            options, index, state, blocked = stack.pop()
            entry = options[index]
            linearized &= ~(1 << entry.position)
            unlift(entry)
            index += 1
    return _Outcome(True, [frame[0][frame[1]].op for frame in stack], state, None)


def _names(ops: list[Op]) -> tuple[str, ...]:
    return tuple(sorted({name for op in ops for name in op.objects}))


def _fails_at(ops: list[Op], blocking: Op, model: Model, budget: int) -> bool:
    try:
        outcome = _search(_names(ops), ops, model, budget)
    except Undecided:
        return False
    return not outcome.ok and outcome.blocking is not None and outcome.blocking.id == blocking.id


def shrink(ops: list[Op], blocking: Op, model: Model, seconds: float = 3.0) -> list[Op]:
    """A small sub-history that still fails at `blocking`: ops that start after it returned are
    dropped, then each other op in turn, kept out while the failure stays the same."""
    kept = [op for op in ops if op.call <= blocking.ret]
    if not _fails_at(kept, blocking, model, 200_000):
        return kept
    deadline = time.monotonic() + seconds
    for op in sorted(kept, key=lambda op: -op.call):
        if op.id == blocking.id or time.monotonic() > deadline:
            continue
        trial = [other for other in kept if other.id != op.id]
        if _fails_at(trial, blocking, model, 200_000):
            kept = trial
    return kept


def check_linearizable(
    ops: list[Op], *, slack: float = 0.5, budget: int = DEFAULT_BUDGET
) -> Violation | None:
    """None when `ops` (one part) is linearizable, else a violation with a small failing sub-history.

    Raises Undecided when the search runs out of `budget` steps."""
    if not ops:
        return None
    model = Model(slack)
    names = _names(ops)
    outcome = _search(names, ops, model, budget)
    if outcome.ok:
        return None
    assert outcome.blocking is not None
    blocking = outcome.blocking
    _, why = model.step(names, outcome.state, blocking, blocking.ret)
    minimal = shrink(ops, blocking, model)
    sub_names = _names(minimal)
    sub = _search(sub_names, minimal, model, budget)
    message = (
        f"not linearizable on {', '.join(names)}: no order of the ops explains #{blocking.id} "
        f"({blocking.describe()}).\nLongest linearizable prefix: {len(outcome.deepest)} ops, ending in "
        f"state {describe_state(names, outcome.state)}; there, #{blocking.id} cannot "
        f"take effect: {why or 'an op it must follow cannot come first'}.\n"
        f"A sub-history of {len(minimal)} ops that fails the same way (after "
        f"{describe_state(sub_names, sub.state)} in its longest prefix):"
    )
    return Violation("linearizability", message, tuple(minimal))
