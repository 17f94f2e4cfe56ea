"""What the leader knows about each follower's log (etcd's ``tracker.Progress``).

A follower is in one of three states: PROBE (one APP at a time until the
leader finds where the logs match), REPLICATE (pipelined APPs within an
in-flight window), SNAPSHOT (the log it needs is compacted; a chunked
snapshot transfer is in progress and APPs are paused).
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum

from .messages import Snapshot


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """Last indexes of APP messages sent but not yet acknowledged, oldest first."""

    __slots__ = ("_queue", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._queue: deque[int] = deque()

    def add(self, last_index: int) -> None:
        self._queue.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget every message whose entries are all acknowledged by ``index``."""
        queue = self._queue
        while queue and queue[0] <= index:
            queue.popleft()

    def free_first_one(self) -> None:
        if self._queue:
            self._queue.popleft()

    def full(self) -> bool:
        return len(self._queue) >= self.capacity

    def count(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        self._queue.clear()


class SnapshotTransfer:
    """A chunked InstallSnapshot in progress: which snapshot, how far acked, how long idle."""

    __slots__ = ("acked", "idle_ticks", "sent_to", "snapshot")

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.acked = 0  # bytes the follower confirmed
        self.sent_to = 0  # end of the data sent so far (start of the next chunk)
        self.idle_ticks = 0


class Progress:
    __slots__ = (
        "heartbeat_match",
        "inflights",
        "last_heard",
        "learner",
        "match",
        "match_tick",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "state",
        "transfer",
    )

    def __init__(self, next_index: int, max_inflight: int, learner: bool = False) -> None:
        self.match = 0
        self.match_tick = 0  # leader's tick when ``match`` last grew (lost-data check)
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False  # PROBE: an APP is out, wait for its answer
        self.inflights = Inflights(max_inflight)
        self.recent_active = False
        self.last_heard = -(1 << 62)  # send tick of the newest message it answered (lease)
        self.pending_snapshot = 0
        self.transfer: SnapshotTransfer | None = None
        self.learner = learner
        self.heartbeat_match = -1  # match seen at the previous heartbeat answer (stall check)

    def _reset_state(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.heartbeat_match = -1
        self.pending_snapshot = 0
        self.transfer = None
        self.inflights.reset()

    def become_probe(self) -> None:
        """Probe from just after what is known to match (or after the snapshot sent)."""
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def forget_match(self, next_index: int) -> None:
        """The follower lost entries it had acknowledged: probe again from ``next_index``."""
        self._reset_state(ProgressState.PROBE)
        self.match = 0
        self.next = next_index

    def become_snapshot(self, snapshot: Snapshot) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot.meta.index
        self.transfer = SnapshotTransfer(snapshot)

    def maybe_update(self, index: int) -> bool:
        """Record an acknowledgement of ``index``; False if it told nothing new."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Move ``next`` back after a rejection of the APP at ``rejected``; False if stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True
