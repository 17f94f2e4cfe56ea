"""Entries and a snapshot the core holds but the caller has not yet persisted.

``entries[i]`` has index ``offset + i``. A snapshot here (received from the
leader) precedes ``entries``. ``stable_to``/``stable_snap_to`` drop what the
caller reports persisted through ``advance``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .messages import Entry, Snapshot


class Unstable:
    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.meta.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.meta.index
        return None

    def maybe_term(self, index: int) -> int | None:
        offset = self.offset
        if index < offset:
            snap = self.snapshot
            if snap is not None and snap.meta.index == index:
                return snap.meta.term
            return None
        i = index - offset
        if i >= len(self.entries):
            return None
        return self.entries[i].term

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to ``index`` (of ``term``) are persisted (a term mismatch: replaced since)."""
        if index < self.offset or self.maybe_term(index) != term:
            return
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.meta.index == index:
            self.snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        self.offset = snapshot.meta.index + 1
        self.entries = []
        self.snapshot = snapshot

    def truncate_and_append(self, entries: Sequence[Entry]) -> None:
        after = entries[0].index
        offset = self.offset
        if after == offset + len(self.entries):
            self.entries.extend(entries)
        elif after <= offset:
            self.offset = after
            self.entries = list(entries)
        else:
            del self.entries[after - offset :]
            self.entries.extend(entries)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]
