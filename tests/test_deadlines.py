"""How long a store may wait for the call being served: the caller's deadline less a margin for
the answer to travel, never more than STORE_WAIT_SECONDS, and each call its own."""

from __future__ import annotations

import asyncio
import time

import pytest

from lockservice.deadlines import STORE_WAIT_SECONDS, begin_call, end_call, store_deadline


def _wait(time_remaining: float | None) -> float:
    token = begin_call(time_remaining)
    try:
        return store_deadline() - time.monotonic()
    finally:
        end_call(token)


@pytest.mark.parametrize(
    ("time_remaining", "expected"),
    [
        (None, STORE_WAIT_SECONDS),  # no deadline: the bounded default
        (100.0, STORE_WAIT_SECONDS),  # a far deadline: still the bound
        (3.0, 2.5),  # a 0.5 s margin for the answer
        (1.0, 0.8),  # a fifth of what is left when that is less
        (0.0, 0.0),
        (-1.0, 0.0),  # passed already: give up at once
    ],
)
def test_the_wait_is_the_deadline_less_a_margin_within_the_bound(
    time_remaining: float | None, expected: float
) -> None:
    assert _wait(time_remaining) == pytest.approx(expected, abs=0.05)


def test_each_call_has_its_own_deadline() -> None:
    async def call(time_remaining: float) -> float:
        token = begin_call(time_remaining)
        try:
            await asyncio.sleep(0.01)  # the other call sets its deadline meanwhile
            return store_deadline() - time.monotonic()
        finally:
            end_call(token)

    async def both() -> list[float]:
        return list(await asyncio.gather(call(1.0), call(3.0)))

    short, long = asyncio.run(both())
    assert short == pytest.approx(0.8, abs=0.05)
    assert long == pytest.approx(2.5, abs=0.05)
    assert _wait(None) == pytest.approx(STORE_WAIT_SECONDS, abs=0.05)
