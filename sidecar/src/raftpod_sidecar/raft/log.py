"""The Raft log as the core sees it: persisted entries in ``Storage`` plus ``Unstable``.

Also tracks ``committed`` and ``applied``. Index 0 (or the snapshot index) is
a sentinel whose term is known, so ``term(first_index() - 1)`` answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from .log_unstable import Unstable
from .messages import Entry, Snapshot
from .storage import CompactedError, Storage, UnavailableError, limit_size


class RaftLog:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        first = storage.first_index()
        self.unstable = Unstable(storage.last_index() + 1)
        self.committed = first - 1
        self.applied = first - 1

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def term(self, index: int) -> int | None:
        """Term of ``index``, or None if it is compacted away or not in the log."""
        t = self.unstable.maybe_term(index)
        if t is not None:
            return t
        if index < self.first_index() - 1 or index > self.last_index():
            return None
        try:
            return self.storage.term(index)
        except (CompactedError, UnavailableError):
            return None

    def last_term(self) -> int:
        t = self.term(self.last_index())
        return t if t is not None else 0

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Is a log ending at (``term``, ``last_index``) at least as up to date as ours (§5.4.1)?"""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """Index of the first entry that is missing or differs in term; 0 if none."""
        last = self.last_index()
        for e in entries:
            if e.index > last or not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term`` (fast backtracking)."""
        floor = self.first_index() - 1
        while index > floor:
            t = self.term(index)
            if t is None or t <= term:
                return index
            index -= 1
        return index

    def maybe_append(
        self, index: int, log_term: int, committed: int, entries: Sequence[Entry]
    ) -> tuple[int, int] | None:
        """Follower side of APP: None if (``log_term``, ``index``) does not match.

        Returns (last new index, first index that was overwritten or 0). The caller
        has checked ``index >= committed``, so committed entries are never overwritten.
        """
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = 0
        if entries:
            if index == self.last_index():
                self.append(entries)
            else:
                conflict = self.find_conflict(entries)
                if conflict:
                    self.append(entries[conflict - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new, conflict

    def append(self, entries: Sequence[Entry]) -> int:
        if entries:
            self.unstable.truncate_and_append(entries)
        return self.last_index()

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            self.committed = min(index, self.last_index())

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit up to ``index`` only if it is an entry of ``term`` (Figure 8)."""
        if index > self.committed and self.term(index) == term:
            self.committed = index
            return True
        return False

    def applied_to(self, index: int) -> None:
        self.applied = max(self.applied, index)

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by ``snapshot`` (installed from the leader)."""
        self.committed = snapshot.meta.index
        self.unstable.restore(snapshot)

    def snapshot(self) -> Snapshot:
        snap = self.unstable.snapshot
        return snap if snap is not None else self.storage.snapshot()

    def slice(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries in ``[lo, hi)`` up to ``max_bytes`` (at least one); CompactedError if gone."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise CompactedError(lo)
        offset = self.unstable.offset
        if hi <= offset:
            return self.storage.entries(lo, hi, max_bytes)
        if lo >= offset:
            return limit_size(self.unstable.slice(lo, hi), max_bytes)
        stored = self.storage.entries(lo, offset, max_bytes)
        if len(stored) < offset - lo:
            return stored
        return limit_size(stored + self.unstable.slice(offset, hi), max_bytes)

    def entries_from(self, lo: int, max_bytes: int) -> list[Entry]:
        return self.slice(lo, self.last_index() + 1, max_bytes)

    def unstable_entries(self) -> tuple[Entry, ...]:
        return tuple(self.unstable.entries)

    def next_committed(self, max_bytes: int) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        return self.slice(lo, self.committed + 1, max_bytes)

    def has_next_committed(self) -> bool:
        return self.committed >= max(self.applied + 1, self.first_index())
