"""A simulated node's disk: a ``MemoryStorage`` that changes only when a Ready is persisted.

What is on the disk is exactly what survives a crash. The core reads the same
storage (it never writes it), so anything the core kept only in memory, such as
unstable entries or a commit index not yet in a persisted hard state, is lost
when the simulator throws the ``RawNode`` away and builds a new one from here.
"""

from __future__ import annotations

from ..raft.messages import Entry, Ready
from ..raft.storage import CompactedError, MemoryStorage, UnavailableError


class Disk:
    """Durable state of one simulated node."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()

    def persist(self, rd: Ready) -> int | None:
        """Write a Ready's snapshot, entries and hard state, in that order.

        Returns the term of the entry just before ``rd.entries`` (None if there
        are none or it is compacted), for the Log Matching check.
        """
        storage = self.storage
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        prev_term = None
        if rd.entries:
            storage.append(rd.entries)
            prev_term = self.term(rd.entries[0].index - 1)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        return prev_term

    def term(self, index: int) -> int | None:
        try:
            return self.storage.term(index)
        except (CompactedError, UnavailableError):
            return None

    # -- the LogView the invariant checker reads ---------------------------------
    def first_index(self) -> int:
        return self.storage.first_index()

    def last_index(self) -> int:
        return self.storage.last_index()

    def entry(self, index: int) -> Entry | None:
        storage = self.storage
        if index < storage.first_index() or index > storage.last_index():
            return None
        return storage.entries(index, index + 1, 0)[0]
