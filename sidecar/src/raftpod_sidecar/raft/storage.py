"""The read-only view of stable storage that the core needs, and its in-memory twin.

The core never writes storage: the caller persists what ``Ready`` hands it and
then appends it here (etcd's ``Storage``/``MemoryStorage`` split). The
sidecar's durable WAL implements the same protocol; the simulator and tests
use ``MemoryStorage``.
"""

from __future__ import annotations

from typing import Protocol

from .messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta


class CompactedError(LookupError):
    """The requested index is at or before the snapshot and its entry is gone."""


class UnavailableError(LookupError):
    """The requested index is past the last stored entry."""


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]:
        """Hard state and the configuration as of the snapshot (the log may hold newer ones)."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries in ``[lo, hi)``; at least one if any, then up to ``max_bytes`` of data."""
        ...

    def term(self, index: int) -> int:
        """Term of entry ``index``; valid for ``first_index() - 1 <= index <= last_index()``."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


def entry_size(entry: Entry) -> int:
    """Approximate bytes an entry costs in a message (for batching limits)."""
    return len(entry.data) + len(entry.client) + 24


def limit_size(entries: list[Entry], max_bytes: int) -> list[Entry]:
    """The longest prefix within ``max_bytes`` (never empty if ``entries`` is not)."""
    total = 0
    for i, entry in enumerate(entries):
        total += len(entry.data) + len(entry.client) + 24  # entry_size, inlined: hot path
        if total > max_bytes and i > 0:
            return entries[:i]
    return entries


class MemoryStorage:
    """``Storage`` held in memory; also the base of the sidecar's durable store.

    ``self._entries[0]`` is a dummy entry at the snapshot index carrying its term,
    so ``term(first_index() - 1)`` always answers.
    """

    def __init__(self) -> None:
        self.hard_state = HardState()
        self._snapshot = Snapshot()
        self._entries: list[Entry] = [Entry(term=0, index=0)]

    # -- the read protocol -------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self._snapshot.meta.conf

    def first_index(self) -> int:
        return self._entries[0].index + 1

    def last_index(self) -> int:
        return self._entries[0].index + len(self._entries) - 1

    def term(self, index: int) -> int:
        offset = self._entries[0].index
        if index < offset:
            raise CompactedError(index)
        if index - offset >= len(self._entries):
            raise UnavailableError(index)
        return self._entries[index - offset].term

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        offset = self._entries[0].index
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        return limit_size(self._entries[lo - offset : hi - offset], max_bytes)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- writes by the caller, after persisting a Ready ---------------------
    def set_hard_state(self, hard_state: HardState) -> None:
        self.hard_state = hard_state

    def append(self, entries: tuple[Entry, ...] | list[Entry]) -> None:
        """Append, replacing any stored entries from ``entries[0].index`` on."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return  # all already compacted
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._entries[0].index
        if offset > len(self._entries):
            raise UnavailableError(f"gap: append at {entries[0].index}, last {self.last_index()}")
        del self._entries[offset:]
        self._entries.extend(entries)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace everything with a snapshot received from the leader."""
        meta = snapshot.meta
        if meta.index <= self._snapshot.meta.index:
            return
        self._snapshot = snapshot
        self._entries = [Entry(term=meta.term, index=meta.index)]

    def create_snapshot(self, index: int, conf: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot the caller took at applied ``index``; does not compact."""
        if index <= self._snapshot.meta.index:
            return self._snapshot
        if index > self.last_index():
            raise UnavailableError(index)
        meta = SnapshotMeta(index=index, term=self.term(index), conf=conf)
        self._snapshot = Snapshot(meta=meta, data=data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Drop entries up to and including ``index`` (which must be applied and snapshotted)."""
        offset = self._entries[0].index
        if index <= offset:
            return
        if index > self.last_index():
            raise UnavailableError(index)
        keep = self._entries[index - offset :]
        self._entries = [Entry(term=keep[0].term, index=index), *keep[1:]]
