"""A store failure is logged once when it starts, then at most once per repeat period with a
count, and once when it ends; availability listeners hear each start and end once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from lockservice.store.outage import Outage


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))


def _outage(log: _Log, repeat_seconds: float) -> Outage:
    return Outage(
        log,
        started="down",
        ongoing="still down",
        ended="up again",
        repeat_seconds=repeat_seconds,
        database="db",
    )


def test_a_long_failure_is_a_few_lines() -> None:
    log = _Log()
    heard: list[bool] = []
    outage = _outage(log, repeat_seconds=60.0)
    outage.subscribe(heard.append)
    for _ in range(1000):
        outage.failed("refused")
    assert outage.active
    assert log.lines == [("warning", "down", {"cause": "refused", "database": "db"})]
    outage.ended()
    outage.ended()  # no-op: already over
    assert not outage.active
    assert log.lines[1][:2] == ("info", "up again")
    assert log.lines[1][2]["failures"] == 1000
    assert len(log.lines) == 2
    assert heard == [False, True]


def test_a_lasting_failure_repeats_once_per_period_with_a_count() -> None:
    log = _Log()
    outage = _outage(log, repeat_seconds=0.2)
    outage.failed("refused")
    outage.failed("refused")
    outage.failed("refused")
    time.sleep(0.25)
    outage.failed("reset")
    assert [line[1] for line in log.lines] == ["down", "still down"]
    assert log.lines[1][2]["failures"] == 3  # two unreported, and this one
    assert log.lines[1][2]["cause"] == "reset"
    assert log.lines[1][2]["for_seconds"] == pytest.approx(0.25, abs=0.1)


def test_the_level_is_the_callers() -> None:
    log = _Log()
    Outage(log, started="full", ongoing="still full", ended="ok", level="error").failed("SQLITE_FULL")
    assert log.lines[0][0] == "error"
