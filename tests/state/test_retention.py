"""Bounded watch history and opaque log: what is kept, and a clear error for what is not."""

from __future__ import annotations

import pytest

from raftpod_sidecar.state.commands import LogAppend, Put, Txn
from raftpod_sidecar.state.errors import CompactedLogError, CompactedRevisionError
from raftpod_sidecar.state.machine import StateMachine
from raftpod_sidecar.state.oplog import LogRecord, OpLog
from raftpod_sidecar.state.watch import Event, EventType, WatchHistory

from .feeder import Feeder


def event(key: str, revision: int) -> Event:
    return Event(EventType.PUT, key, b"", revision, revision, 1, 0)


def test_watch_history_drops_whole_revisions() -> None:
    history = WatchHistory(limit=3)
    history.extend([event("a", 1)])
    history.extend([event("b", 2), event("c", 2)])
    assert history.floor == 1
    history.extend([event("d", 3)])  # 4 events: revision 1 goes
    assert history.floor == 2
    assert [e.key for e in history.events_since(2)] == ["b", "c", "d"]
    history.extend([event("e", 4)])  # dropping "b" drops all of revision 2
    assert history.floor == 3
    assert [e.key for e in history.events_since(3)] == ["d", "e"]
    with pytest.raises(CompactedRevisionError) as info:
        history.events_since(2)
    assert info.value.oldest == 3
    assert "revision 2 is no longer retained" in str(info.value)


def test_watch_history_filters_by_prefix_and_survives_long_runs() -> None:
    history = WatchHistory(limit=100)
    for revision in range(1, 5001):
        history.extend([event(f"k{revision % 2}/{revision}", revision)])
    assert len(history) == 100
    assert history.floor == 4901
    assert [e.revision for e in history.events_since(4990, "k1/")] == list(range(4991, 5001, 2))
    assert history.events_since(6000) == []


def test_oplog_keeps_the_newest_commands() -> None:
    log = OpLog(limit=2)
    for index in (3, 5, 9):
        log.append(LogRecord(index, 1, str(index).encode()))
    assert log.floor == 4
    assert [r.index for r in log.log_since(4)] == [5, 9]
    assert [r.index for r in log.log_since(6)] == [9]
    with pytest.raises(CompactedLogError) as info:
        log.log_since(3)
    assert info.value.oldest == 4


def test_machine_limits_are_configurable() -> None:
    feed = Feeder(StateMachine(history_events=2, retained_commands=1))
    feed(Txn((), (Put("a", b"1"), Put("b", b"1"), Put("c", b"1"))))  # more than the limit
    assert feed.sm.watch.floor == 2
    feed(LogAppend(b"x"))
    feed(LogAppend(b"y"))
    assert [r.data for r in feed.sm.oplog.log_since(3)] == [b"y"]
