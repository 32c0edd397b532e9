"""An undo log: how the memory store rolls back every change of a body that raises.

Each change to a table made through the journal records how to undo it; `rollback` undoes them
newest first, so a key written twice, or a queue row removed then re-added, ends exactly as it
was before the body. Changes are made in place (no copy of the tables per write), so a body
costs what it changes, not what the store holds.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

__all__ = ["Journal"]

K = TypeVar("K")
V = TypeVar("V")


class Journal:
    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] = []

    def set(self, table: dict[K, V], key: K, value: V) -> None:
        """`table[key] = value`, undone by restoring the previous value (or removing the key)."""
        if key in table:
            self._undo.append(partial(table.__setitem__, key, table[key]))
        else:
            self._undo.append(partial(table.pop, key))
        table[key] = value

    def pop(self, table: dict[K, V], key: K) -> V | None:
        """Removes `key` (None when absent), undone by putting it back."""
        if key not in table:
            return None
        value = table.pop(key)
        self._undo.append(partial(table.__setitem__, key, value))
        return value

    def append(self, items: list[V], item: V) -> None:
        """Appends `item`, undone by removing the last item."""
        items.append(item)
        self._undo.append(items.pop)

    def rollback(self) -> None:
        """Undoes every change, newest first; the journal is then empty."""
        while self._undo:
            self._undo.pop()()
