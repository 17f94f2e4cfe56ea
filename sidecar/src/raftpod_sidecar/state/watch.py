"""Watch event history: the last N key events, for resumable watches.

``apply`` hands new events to the node for live watchers; this history lets a
watcher that reconnects resume ``from_revision`` without missing anything, or
tells it clearly (``CompactedRevisionError``) that it fell too far behind and
must re-read the state, as etcd does after compaction.

The history is *not* part of snapshots (it could hold up to N full values):
after a restore it starts empty with ``floor = store revision + 1``. Only a
watcher resuming from before the snapshot on that node is affected.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from operator import attrgetter
from typing import NamedTuple

from raftpod_sidecar.state.errors import CompactedRevisionError
from raftpod_sidecar.state.retained import Retained

DEFAULT_HISTORY_EVENTS = 10_000


class EventType(IntEnum):
    PUT = 0
    DELETE = 1


class Event(NamedTuple):
    """One change to one key; after a delete ``value`` is empty and numbers are 0."""

    type: EventType
    key: str
    value: bytes
    revision: int  # the store revision of the write (the key's mod_revision)
    create_revision: int
    version: int
    lease: int


class WatchHistory:
    """The newest ``limit`` events, ordered by revision."""

    def __init__(self, limit: int = DEFAULT_HISTORY_EVENTS) -> None:
        self._events: Retained[Event] = Retained(limit, attrgetter("revision"))

    def reset(self, floor: int) -> None:
        """Forget every event: only revisions from ``floor`` on will be served."""
        self._events = Retained(self._events.limit, attrgetter("revision"), floor)

    @property
    def floor(self) -> int:
        """Every event with ``revision >= floor`` is retained."""
        return self._events.floor

    def __len__(self) -> int:
        return len(self._events)

    def extend(self, events: Iterable[Event]) -> None:
        self._events.extend(events)

    def events_since(self, from_revision: int, prefix: str = "") -> list[Event]:
        """Events with ``revision >= from_revision`` on keys starting with ``prefix``."""
        if from_revision < self.floor:
            raise CompactedRevisionError(from_revision, self.floor)
        events = self._events.since(from_revision)
        if prefix:
            return [e for e in events if e.key.startswith(prefix)]
        return events
