"""The checker on hand-written histories: it accepts correct ones (including ones only the
unknown-outcome handling explains) and rejects each kind of corruption with a useful explanation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.robustness.checker import Undecided, check, check_linearizable, forget_newest_write
from tests.robustness.history import INF, Op, Recorder, load, save

FINAL = 99


class History:
    """Builds ops with explicit times; `ret=None` is an unknown outcome (open end)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(
        self, process: int, kind: str, call: float, ret: float | None, status: str = "ok", **fields: object
    ) -> Op:
        if ret is None:
            status, end = "unknown", INF
        else:
            end = ret
        op = Op(id=len(self.ops), process=process, kind=kind, call=call, ret=end, status=status, **fields)  # type: ignore[arg-type]
        self.ops.append(op)
        return op

    def get(self, p: int, key: str, call: float, ret: float, value: bytes | None, version: int = 0) -> Op:
        if value is None:
            return self.add(p, "get", call, ret, "fail", key=key, reason="RESOURCE_NOT_FOUND")
        return self.add(p, "get", call, ret, key=key, value=value, version=version)


def _violations(history: History, check_name: str) -> list[str]:
    report = check(history.ops, final_process=FINAL)
    return [str(v) for v in report.violations if v.check == check_name]


# -- accepted ----------------------------------------------------------------------------------


def test_a_sequential_history_of_every_resource_call_is_accepted() -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    h.get(2, "k", 2, 3, b"a", 1)
    h.add(1, "update", 4, 5, key="k", value=b"b", expected_version=1, version=2)
    h.add(2, "update", 6, 7, "fail", key="k", value=b"x", expected_version=1, reason="VERSION_MISMATCH")
    h.add(1, "cas", 8, 9, key="k", value=b"c", expected_value=b"b", version=3)
    h.add(2, "cas", 10, 11, "fail", key="k", value=b"y", expected_value=b"b", reason="VALUE_MISMATCH")
    h.add(1, "create", 12, 13, "fail", key="k", value=b"z", reason="RESOURCE_EXISTS")
    h.add(2, "delete", 14, 15, key="k", expected_version=3)
    h.get(FINAL, "k", 16, 17, None)
    h.add(1, "cas", 18, 19, key="k", value=b"d", expect_absent=True, version=1)
    report = check(h.ops, final_process=FINAL)
    assert report.ok, report.explain()
    assert report.parts == 1


def test_concurrent_writes_may_take_effect_in_either_order() -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    # Both updates overlap; the second in real time took effect first.
    h.add(1, "cas", 2, 6, key="k", value=b"b", expected_value=b"c", version=3)
    h.add(2, "cas", 3, 4, key="k", value=b"c", expected_value=b"a", version=2)
    h.get(3, "k", 5, 5.5, b"c", 2)
    h.get(FINAL, "k", 7, 8, b"b", 3)
    assert check(h.ops, final_process=FINAL).ok


def test_a_write_with_unknown_outcome_may_take_effect_long_after_its_client_gave_up() -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    h.add(1, "update", 2, None, key="k", value=b"b", expected_version=1)  # timed out
    h.get(2, "k", 10, 11, b"a", 1)  # not applied yet
    h.get(FINAL, "k", 100, 101, b"b", 2)  # applied later: a delayed write, still linearizable
    report = check(h.ops, final_process=FINAL)
    assert report.ok, report.explain()
    assert report.unknown == 1


def test_a_write_with_unknown_outcome_may_never_take_effect() -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    h.add(1, "update", 2, None, key="k", value=b"b", expected_version=1)
    h.add(2, "update", 3, 4, key="k", value=b"c", expected_version=1, version=2)
    h.get(FINAL, "k", 5, 6, b"c", 2)
    assert check(h.ops, final_process=FINAL).ok


def test_a_lock_handed_over_with_fenced_writes_is_accepted() -> None:
    h = History()
    h.add(0, "create", 0, 0.1, key="f", value=b"0", version=1)
    h.add(1, "acquire", 1, 1.1, lock="L", token=1, ttl=5)
    h.add(2, "acquire", 1.2, 1.3, "fail", lock="L", ttl=5, reason="LOCK_HELD")
    h.add(1, "fenced_update", 1.4, 1.5, key="f", lock="L", token=1, value=b"1", version=2)
    h.add(1, "release", 1.6, 1.7, lock="L", token=1)
    h.add(2, "acquire", 1.8, 1.9, lock="L", token=2, ttl=5)
    h.add(1, "fenced_update", 2.0, 2.1, "fail", key="f", lock="L", token=1, value=b"x", reason="STALE_FENCE")
    h.add(1, "release", 2.2, 2.3, "fail", lock="L", token=1, reason="LOCK_NOT_HELD")
    h.add(2, "fenced_update", 2.4, 2.5, key="f", lock="L", token=2, value=b"2", version=3)
    h.get(FINAL, "f", 3, 3.1, b"2", 3)
    report = check(h.ops, final_process=FINAL)
    assert report.ok, report.explain()
    assert report.parts == 1  # the fenced resource and its lock are checked together


def test_an_acquire_with_unknown_outcome_may_hold_the_lock_and_use_a_token() -> None:
    h = History()
    h.add(1, "acquire", 0, None, lock="L", ttl=3)  # connection lost: granted, token unknown
    h.add(2, "acquire", 1, 1.1, "fail", lock="L", ttl=3, reason="LOCK_HELD")
    h.add(2, "acquire", 5, 5.1, lock="L", token=2, ttl=3)  # after the lost grant's lease ran out
    report = check(h.ops)
    assert report.ok, report.explain()


def test_a_paused_holder_loses_its_lock_when_its_lease_expires() -> None:
    h = History()
    h.add(0, "create", 0, 0.1, key="f", value=b"0", version=1)
    h.add(1, "acquire", 1, 1.1, lock="L", token=1, ttl=2)
    h.add(2, "acquire", 4, 4.1, lock="L", token=2, ttl=2)  # token 1's lease ran out at ~3.1
    h.add(1, "fenced_update", 5, 5.1, "fail", key="f", lock="L", token=1, value=b"x", reason="STALE_FENCE")
    h.add(1, "release", 5.2, 5.3, "fail", lock="L", token=1, reason="LOCK_NOT_HELD")
    report = check(h.ops)
    assert report.ok, report.explain()


def test_unknown_outcomes_across_several_keys_and_locks_are_accepted() -> None:
    h = History()
    for i in range(6):
        h.add(i, "create", 0, None, key=f"k{i}", value=b"a")
        h.add(i, "acquire", 0.1, None, lock=f"L{i}", ttl=2)
        h.add(i, "update", 0.2, None, key=f"k{i}", value=b"b", expected_version=1)
    for i in range(6):
        h.get(FINAL, f"k{i}", 10, 11, b"b" if i % 2 else b"a", 2 if i % 2 else 1)
    report = check(h.ops, final_process=FINAL)
    assert report.ok, report.explain()
    assert report.parts == 12


def test_each_acquire_of_unknown_outcome_may_explain_one_lease_of_refusals() -> None:
    h = History()
    for i in range(3):
        h.add(i, "acquire", 0, None, lock="L", ttl=3)  # three clients cut off by a crash
    for epoch in (10, 20, 30):  # each refusal needs a grant of its own, late but possible
        h.add(9, "acquire", epoch, epoch + 0.1, "fail", lock="L", ttl=3, reason="LOCK_HELD")
    report = check(h.ops)
    assert report.ok, report.explain()
    h.add(9, "acquire", 40, 40.1, "fail", lock="L", ttl=3, reason="LOCK_HELD")  # a fourth: no grant left
    (lin,) = _violations(h, "linearizability")
    assert "surely out by 33.600" in lin
    assert "refused as LOCK_HELD, but the holder's lease surely expired" in lin


# -- rejected ----------------------------------------------------------------------------------


def test_a_lost_write_is_rejected() -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    h.add(1, "update", 2, 3, key="k", value=b"b", expected_version=1, version=2)
    h.get(FINAL, "k", 10, 11, b"a", 1)  # after a restart, the acknowledged v2 is gone
    (lost,) = _violations(h, "durability")
    assert "acknowledged write lost: #1 made k v2" in lost
    assert "final read saw v1" in lost
    (lin,) = _violations(h, "linearizability")
    assert "read b'a' v1, but k is b'b' v2" in lin


def test_forgetting_the_newest_acknowledged_write_is_a_lost_write() -> None:
    """The live runs' self-check. The final read's version can come from a write whose client never
    heard back (v3 here): one version less is then still every acknowledged write, so the
    corruption must go below the newest acknowledged one (v2), not below what the read saw."""
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    h.add(1, "update", 2, 3, key="k", value=b"b", expected_version=1, version=2)
    h.add(2, "update", 4, None, key="k", value=b"c", expected_version=2)  # took effect, unanswered
    h.get(FINAL, "k", 10, 11, b"c", 3)
    h.get(FINAL, "other", 10, 11, None)
    assert check(h.ops, final_process=FINAL).ok
    lost = check(forget_newest_write(h.ops, FINAL), final_process=FINAL)
    assert {v.check for v in lost.violations} == {"durability", "linearizability"}, lost.explain()
    (durability,) = [str(v) for v in lost.violations if v.check == "durability"]
    assert "acknowledged write lost: #1 made k v2" in durability
    assert "final read saw v1" in durability


def test_a_stale_read_is_rejected() -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    h.add(1, "update", 2, 3, key="k", value=b"b", expected_version=1, version=2)
    h.get(2, "k", 4, 5, b"a", 1)  # began after the update was acknowledged
    (lin,) = _violations(h, "linearizability")
    assert "no order of the ops explains #2" in lin
    assert "k = 'b' v2" in lin
    assert "#2 p2 [4.000, 5.000] get k -> ok 'a' v1" in lin


def test_two_holders_at_once_are_rejected() -> None:
    h = History()
    h.add(1, "acquire", 0, 0.1, lock="L", token=1, ttl=10)
    h.add(2, "acquire", 1, 1.1, lock="L", token=2, ttl=10)  # no release, lease alive
    (two,) = _violations(h, "two holders")
    assert "L granted to #1 (token 2)" in two
    assert "#0 (token 1) surely held it" in two
    (lin,) = _violations(h, "linearizability")
    assert "L is held with 1, its lease alive" in lin


def test_a_token_going_backwards_is_rejected() -> None:
    h = History()
    h.add(1, "acquire", 0, 0.1, lock="L", token=5, ttl=10)
    h.add(1, "release", 0.2, 0.3, lock="L", token=5)
    h.add(2, "acquire", 1, 1.1, lock="L", token=3, ttl=10)
    (backwards,) = _violations(h, "tokens")
    assert "token of L went backwards: #2 got 3 after #0 had got 5" in backwards
    (lin,) = _violations(h, "linearizability")
    assert "token 3 is not above the last token granted, 5" in lin


def test_a_token_granted_twice_is_rejected() -> None:
    h = History()
    h.add(1, "acquire", 0, 0.1, lock="L", token=1, ttl=1)
    h.add(2, "acquire", 5, 5.1, lock="L", token=1, ttl=1)
    assert any("token 1 of L granted twice" in v for v in _violations(h, "tokens"))


def test_a_stale_holders_fenced_write_accepted_is_rejected() -> None:
    h = History()
    h.add(0, "create", 0, 0.1, key="f", value=b"0", version=1)
    h.add(1, "acquire", 1, 1.1, lock="L", token=1, ttl=2)
    h.add(2, "acquire", 4, 4.1, lock="L", token=2, ttl=10)  # token 1 superseded
    h.add(1, "fenced_update", 5, 5.1, key="f", lock="L", token=1, value=b"stale", version=2)
    stale = _violations(h, "stale fence")
    assert any("token 2 was granted (#2) before the write started" in v for v in stale)
    assert any("token 1's 2s lease had surely expired" in v for v in stale)
    (lin,) = _violations(h, "linearizability")
    assert "a fenced write getting past its fence needs its token to hold the lock" in lin


def test_a_fenced_write_after_its_release_is_rejected() -> None:
    h = History()
    h.add(0, "create", 0, 0.1, key="f", value=b"0", version=1)
    h.add(1, "acquire", 1, 1.1, lock="L", token=1, ttl=30)
    h.add(1, "release", 1.2, 1.3, lock="L", token=1)
    h.add(2, "fenced_update", 1.4, 1.5, key="f", lock="L", token=1, value=b"late", version=2)
    (stale,) = _violations(h, "stale fence")
    assert "succeeded after that token was released (#2)" in stale
    assert "nobody holds L" in _violations(h, "linearizability")[0]


def test_a_read_of_a_value_never_written_is_rejected() -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    h.add(1, "update", 2, None, key="k", value=b"b", expected_version=1)  # unknown cannot excuse...
    h.get(2, "k", 3, 4, b"zzz", 2)  # ...a value nobody wrote
    (lin,) = _violations(h, "linearizability")
    assert "read b'zzz' v2" in lin


def test_an_unknown_write_cannot_take_effect_before_it_was_called() -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    h.get(2, "k", 2, 3, b"b", 2)  # sees b...
    h.add(1, "update", 4, None, key="k", value=b"b", expected_version=1)  # ...written only later
    (lin,) = _violations(h, "linearizability")
    assert "read b'b' v2, but k is b'a' v1" in lin


def test_a_refusal_that_the_state_does_not_explain_is_rejected() -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    h.add(2, "update", 2, 3, "fail", key="k", value=b"b", expected_version=1, reason="VERSION_MISMATCH")
    (lin,) = _violations(h, "linearizability")
    assert "refused as VERSION_MISMATCH, but k is at the expected v1" in lin


def test_a_held_lock_refused_to_a_free_lock_is_rejected() -> None:
    h = History()
    h.add(1, "acquire", 0, 0.1, lock="L", token=1, ttl=10)
    h.add(1, "release", 0.2, 0.3, lock="L", token=1)
    h.add(2, "acquire", 1, 1.1, "fail", lock="L", ttl=10, reason="LOCK_HELD")
    (lin,) = _violations(h, "linearizability")
    assert "refused as LOCK_HELD, but nobody holds L" in lin


def test_the_failing_sub_history_is_small() -> None:
    h = History()
    h.add(1, "create", 0, 0.5, key="k", value=b"v0", version=1)
    for i in range(1, 40):
        h.add(1, "update", i, i + 0.5, key="k", value=f"v{i}".encode(), expected_version=i, version=i + 1)
        h.get(2, "k", i + 0.6, i + 0.7, f"v{i}".encode(), i + 1)
    h.get(3, "k", 50, 51, b"v7", 8)  # a stale read at the end
    violation = check_linearizable(h.ops)
    assert violation is not None
    # The stale read, the write that overwrote what it saw, and the chain of writes leading there.
    assert len(violation.ops) == 10, str(violation)
    assert h.ops[-1] in violation.ops
    assert "k = 'v8' v9" in violation.message


def test_a_search_past_its_budget_says_so() -> None:
    h = History()
    h.add(0, "create", 0, 0.1, key="k", value=b"a", version=1)
    for i in range(12):
        h.add(i, "update", 1, None, key="k", value=f"v{i}".encode())
    h.get(20, "k", 100, 100.1, b"never written", 5)
    with pytest.raises(Undecided, match="no verdict after 50 search steps"):
        check_linearizable(h.ops, budget=50)


def test_the_recorder_leaves_unfinished_calls_open_ended() -> None:
    recorder = Recorder()
    first = recorder.invoke(1, "create", key="k", value=b"a")
    second = recorder.invoke(2, "get", key="k")
    recorder.complete(first, "ok", version=1)
    done, pending = recorder.history()
    assert (done.status, done.version) == ("ok", 1)
    assert done.ret >= done.call
    assert (pending.id, pending.status, pending.ret) == (second, "unknown", INF)


def test_a_write_a_later_delete_may_have_undone_is_not_lost() -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"a", version=1)
    h.add(2, "delete", 0.5, None, key="k", expected_version=1)  # cut off: may have come after
    h.get(FINAL, "k", 10, 11, None)
    report = check(h.ops, final_process=FINAL)
    assert report.ok, report.explain()


def test_a_saved_history_loads_back_the_same(tmp_path: Path) -> None:
    h = History()
    h.add(1, "create", 0, 1, key="k", value=b"\xff\x00a", version=1)
    h.add(2, "cas", 1, None, key="k", value=b"b", expected_value=b"\xff\x00a")
    h.add(3, "acquire", 2, 2.5, lock="L", token=4, ttl=3)
    path = str(tmp_path / "history.jsonl")
    save(h.ops, path)
    assert load(path) == h.ops
