"""MemoryBudget: fixed shares of one budget; reply pages wait for room, then are refused."""

from __future__ import annotations

import asyncio

import pytest

from lockservice.core import memory
from lockservice.core.memory import MemoryBudget
from lockservice.errors import LimitExceeded

MIB = 1024 * 1024


def test_the_budget_is_shared_in_fixed_parts() -> None:
    budget = MemoryBudget(256 * MIB, MIB)
    assert (budget.cache_bytes, budget.page_share_bytes, budget.watcher_share_bytes) == (
        128 * MIB,
        64 * MIB,
        64 * MIB,
    )
    assert budget.page_value_bytes == MIB
    assert 2 * MIB < budget.page_reserve_bytes < 2 * MIB + 2048


def test_a_page_waits_for_room_and_is_refused_when_none_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "PAGE_WAIT_SECONDS", 0.2)
    budget = MemoryBudget(16 * MIB, MIB)  # a page share of 4 MiB: one page at a time

    async def scenario() -> list[str]:
        order: list[str] = []

        async def page(name: str, hold: float) -> None:
            async with budget.page() as max_bytes:
                assert max_bytes == MIB
                order.append(f"{name} in")
                await asyncio.sleep(hold)
            order.append(f"{name} out")

        first = asyncio.create_task(page("first", 0.05))
        await asyncio.sleep(0)
        await page("second", 0)  # waits for the first to give its room back
        assert budget.pages_in_use_bytes == 0
        await first
        holder = asyncio.create_task(page("holder", 1.0))
        await asyncio.sleep(0)
        with pytest.raises(LimitExceeded, match="memory budget"):
            await page("refused", 0)
        holder.cancel()
        return order

    assert asyncio.run(scenario()) == ["first in", "first out", "second in", "second out", "holder in"]


def test_watcher_bytes_are_refused_past_their_share_and_given_back() -> None:
    budget = MemoryBudget(16 * MIB, MIB)
    assert budget.take_watcher_bytes(3 * MIB)
    assert not budget.take_watcher_bytes(2 * MIB)
    assert budget.watchers_in_use_bytes == 3 * MIB
    budget.give_watcher_bytes(3 * MIB)
    assert budget.take_watcher_bytes(4 * MIB)
