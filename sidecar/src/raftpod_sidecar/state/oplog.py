"""The opaque replicated log: ``log_append`` commands for apps with their own state machine.

The sidecar does not interpret these commands; it keeps the newest N (with
their raft index and term) so an app can stream ``GET /v1/log?from_index=N``
and resume after a restart. Unlike the watch history this *is* replicated
state: it is in snapshots, so a node restored from one serves the same log.
An app that falls behind the retained window gets ``CompactedLogError`` and
must rebuild from its own snapshot.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, NamedTuple

from raftpod_sidecar.state.errors import CompactedLogError
from raftpod_sidecar.state.retained import Retained

DEFAULT_RETAINED_COMMANDS = 10_000


class LogRecord(NamedTuple):
    index: int  # type: ignore[assignment]
    term: int
    data: bytes


class OpLog:
    """The newest ``limit`` opaque commands, ordered by raft index."""

    def __init__(self, limit: int = DEFAULT_RETAINED_COMMANDS) -> None:
        self._records: Retained[LogRecord] = Retained(limit, attrgetter("index"))

    @property
    def floor(self) -> int:
        """Every opaque command with ``index >= floor`` is retained."""
        return self._records.floor

    def __len__(self) -> int:
        return len(self._records)

    def append(self, record: LogRecord) -> None:
        self._records.extend((record,))

    def log_since(self, from_index: int) -> list[LogRecord]:
        """Commands with ``index >= from_index``, oldest first."""
        if from_index < self.floor:
            raise CompactedLogError(from_index, self.floor)
        return self._records.since(from_index)

    def to_data(self) -> list[Any]:
        """``[floor, [[index, term, data], ...]]`` for snapshots."""
        return [self.floor, [list(r) for r in self._records]]

    def restore(self, data: list[Any]) -> None:
        floor, records = data
        fresh: Retained[LogRecord] = Retained(self._records.limit, attrgetter("index"), floor)
        fresh.extend(LogRecord(*r) for r in records)
        self._records = fresh
