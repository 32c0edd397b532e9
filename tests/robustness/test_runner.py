"""The runner's end of a run: workers go on after the faults until the history holds what the
test claims (a CI run once ended a PostgreSQL history with one acknowledged write of the three its
assertions asked for: its seed's faults had left little calm time)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.robustness.history import Recorder
from tests.robustness.runner import _until_enough


def test_the_workers_stop_only_once_the_history_holds_the_least_asked_for() -> None:
    recorder = Recorder()
    recorder.complete(recorder.invoke(1, "update"), "ok")
    recorder.complete(recorder.invoke(1, "cas"), "fail", reason="FAILED_PRECONDITION")

    def late_writes() -> None:
        time.sleep(0.3)
        recorder.complete(recorder.invoke(2, "cas"), "ok")
        recorder.complete(recorder.invoke(2, "update"), "ok")

    writer = threading.Thread(target=late_writes)
    began = time.monotonic()
    writer.start()
    _until_enough(recorder, ((("update ok", "cas ok"), 3),))
    waited = time.monotonic() - began
    writer.join()
    assert waited >= 0.3
    counts = [f"{op.kind} {op.status}" for op in recorder.history()]
    assert counts.count("update ok") + counts.count("cas ok") == 3


def test_nothing_asked_for_ends_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_waiting(seconds: float) -> None:
        raise AssertionError(f"waited {seconds}s with nothing asked for")

    monkeypatch.setattr(time, "sleep", no_waiting)
    _until_enough(Recorder(), ())
