"""A bounded, append-only sequence ordered by a position (revision or raft index).

Both the watch event history and the opaque command log keep "the last N
items" and must say precisely what they no longer have: ``floor`` is the
lowest position from which *every* item is still retained. Trimming drops
whole positions (all events of one txn share a revision), so a reader never
gets half of a revision.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Retained(Generic[T]):
    """The newest ``limit`` items (a little fewer when trimming a whole position)."""

    def __init__(self, limit: int, position: Callable[[T], int], floor: int = 1) -> None:
        if limit < 0:
            raise ValueError(f"retention limit must be >= 0, got {limit}")
        self.limit = limit
        self.floor = floor
        self._position = position
        self._items: list[T] = []
        self._start = 0  # items before it are dropped; deleted in batches

    def __len__(self) -> int:
        return len(self._items) - self._start

    def __iter__(self) -> Iterator[T]:
        return iter(self._items[self._start :])

    def extend(self, items: Iterable[T]) -> None:
        """Append items whose positions are >= every retained one, then trim."""
        held = self._items
        held.extend(items)
        excess = len(held) - self._start - self.limit
        if excess <= 0:
            return
        start = self._start + excess
        last = self._position(held[start - 1])
        while start < len(held) and self._position(held[start]) == last:
            start += 1
        self.floor = last + 1
        if start > 1024 and start * 2 > len(held):
            del held[:start]
            start = 0
        self._start = start

    def since(self, position: int) -> list[T]:
        """Retained items at ``position`` or later; the caller checks ``floor`` first."""
        held = self._items
        lo = bisect_left(held, position, lo=self._start, key=self._position)
        return held[lo:]
