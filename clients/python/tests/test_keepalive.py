"""The lease keeper: refresh every third of the TTL, ride out transient failures until the lease's
conservative deadline, report a lease that is gone at once."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from lockservice_client import DeadlineExceeded, LeaseNotFound, LockserviceError, Unavailable
from lockservice_client.keepalive import LeaseKeeper, LeaseSchedule


def test_schedule_refreshes_every_third_and_never_overestimates_the_deadline() -> None:
    schedule = LeaseSchedule(ttl_seconds=3.0, confirmed_at=100.0)
    assert schedule.expires_at == 103.0
    assert schedule.wait_before_refresh(now=100.5, last_failed=False) == 0.5
    assert schedule.wait_before_refresh(now=102.9, last_failed=True) == pytest.approx(0.1)
    assert schedule.wait_before_refresh(now=101.0, last_failed=True) == 0.25
    assert schedule.call_timeout(now=102.5) == 0.5
    assert schedule.call_timeout(now=104.0) == 0.05
    schedule.confirm(sent_at=101.0)
    assert (schedule.expires_at, schedule.expired(103.9), schedule.expired(104.0)) == (104.0, False, True)


@pytest.mark.parametrize(
    ("error", "now", "lost"),
    [
        (Unavailable("down", code=grpc.StatusCode.UNAVAILABLE), 102.0, False),
        (DeadlineExceeded("slow", code=grpc.StatusCode.DEADLINE_EXCEEDED), 102.0, False),
        (Unavailable("down", code=grpc.StatusCode.UNAVAILABLE), 103.0, True),
        (LeaseNotFound("gone", code=grpc.StatusCode.NOT_FOUND, reason="LEASE_NOT_FOUND"), 100.1, True),
    ],
)
def test_a_failed_refresh_is_retried_only_while_it_may_help(
    error: LockserviceError, now: float, lost: bool
) -> None:
    assert LeaseSchedule(ttl_seconds=3.0, confirmed_at=100.0).lost_by(error, now) is lost


class ScriptedRefresh:
    """A refresh that fails with the scripted errors, in order, then succeeds; counts its calls."""

    def __init__(self, failures: list[LockserviceError]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, timeout: float) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


def _keep(refresh: ScriptedRefresh, ttl: float, seconds: float) -> list[BaseException]:
    lost: list[BaseException] = []
    reported = threading.Event()

    def on_lost(cause: BaseException) -> None:
        lost.append(cause)
        reported.set()

    keeper = LeaseKeeper(refresh, LeaseSchedule(ttl, time.monotonic()), on_lost)
    keeper.start()
    reported.wait(seconds)
    keeper.stop()
    return lost


def test_transient_failures_within_the_ttl_are_ridden_out() -> None:
    refresh = ScriptedRefresh([Unavailable("down", code=grpc.StatusCode.UNAVAILABLE)])
    assert _keep(refresh, ttl=0.9, seconds=1.5) == []
    assert refresh.calls >= 4


def test_failures_until_the_deadline_lose_the_lease() -> None:
    down = Unavailable("down", code=grpc.StatusCode.UNAVAILABLE)
    refresh = ScriptedRefresh([down] * 100)
    started = time.monotonic()
    assert _keep(refresh, ttl=0.6, seconds=3.0) == [down]
    assert 0.6 <= time.monotonic() - started < 1.5


def test_a_lease_that_is_gone_is_lost_at_the_first_refresh() -> None:
    gone = LeaseNotFound("gone", code=grpc.StatusCode.NOT_FOUND, reason="LEASE_NOT_FOUND")
    refresh = ScriptedRefresh([gone])
    assert _keep(refresh, ttl=3.0, seconds=3.0) == [gone]
    assert refresh.calls == 1
