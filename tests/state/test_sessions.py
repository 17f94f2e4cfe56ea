"""SessionTable: duplicates answered from cache, deterministic LRU-by-index eviction."""

from __future__ import annotations

import msgpack
import pytest

from raftpod_sidecar.raft.sessions import Hit, SessionTable


def test_new_request_misses_then_hits_after_record() -> None:
    table = SessionTable()
    assert table.lookup("c1", 1) is None
    table.record("c1", 1, {"revision": 3}, index=10)
    assert table.lookup("c1", 1) == Hit({"revision": 3})
    assert table.lookup("c1", 2) is None
    assert table.lookup("c2", 1) is None


def test_lower_seq_is_stale_and_higher_seq_replaces() -> None:
    table = SessionTable()
    table.record("c1", 1, "one", index=1)
    table.record("c1", 2, "two", index=2)
    assert table.lookup("c1", 2) == Hit("two")
    assert table.lookup("c1", 1) == Hit(None, stale=True)
    assert len(table) == 1


def test_eviction_drops_least_recently_recorded_by_index() -> None:
    table = SessionTable(max_sessions=2)
    table.record("a", 1, "a1", index=1)
    table.record("b", 1, "b1", index=2)
    table.record("a", 2, "a2", index=3)  # a is now more recent than b
    table.record("c", 1, "c1", index=4)
    assert table.lookup("b", 1) is None
    assert table.lookup("a", 2) == Hit("a2")
    assert table.lookup("c", 1) == Hit("c1")


def test_lookups_do_not_affect_eviction_order() -> None:
    table = SessionTable(max_sessions=2)
    table.record("a", 1, "a1", index=1)
    table.record("b", 1, "b1", index=2)
    assert table.lookup("a", 1) is not None
    table.record("c", 1, "c1", index=3)
    assert table.lookup("a", 1) is None
    assert table.lookup("b", 1) == Hit("b1")


def test_round_trips_through_msgpack_data() -> None:
    table = SessionTable(max_sessions=3)
    for i, client in enumerate(["x", "y", "z", "x"], start=1):
        table.record(client, i, {"n": i, "b": b"\x00"}, index=i)
    data = msgpack.unpackb(msgpack.packb(table.to_data()), raw=False)
    copy = SessionTable.from_data(data, max_sessions=3)
    assert copy.to_data() == table.to_data()
    copy.record("w", 1, None, index=9)  # evicts y, the oldest, in both
    table.record("w", 1, None, index=9)
    assert copy.to_data() == table.to_data()
    assert copy.lookup("y", 2) is None


def test_rejects_a_useless_bound() -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        SessionTable(max_sessions=0)
