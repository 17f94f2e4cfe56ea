"""StateMachine.apply: every command, its result shape, its events and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from raftpod_sidecar.raft.messages import ConfChange, ConfChangeType, Entry, EntryType
from raftpod_sidecar.state.commands import (
    Compare,
    CompareOp,
    CompareTarget,
    Delete,
    Get,
    LeaseGrant,
    LeaseRevoke,
    LogAppend,
    Put,
    Range,
    Txn,
)
from raftpod_sidecar.state.machine import Applied
from raftpod_sidecar.state.watch import Event, EventType

from .feeder import Feeder


def result(applied: Applied) -> dict[str, Any]:
    assert applied.result is not None
    return applied.result


def state(feed: Feeder) -> list[Any]:
    """Everything replicated except the applied index."""
    sm = feed.sm
    return [
        sm.kv.capture().to_data(),
        sm.leases.to_data(),
        sm.oplog.to_data(),
        sm.sessions.to_data(),
    ]


def test_put_creates_then_updates_with_etcd_numbers(feed: Feeder) -> None:
    first = feed(Put("a", b"1"))
    assert first.result == {"revision": 1, "index": 1}
    assert first.events == (Event(EventType.PUT, "a", b"1", 1, 1, 1, 0),)
    feed(Put("b", b"x"))
    second = feed(Put("a", b"2"))
    assert second.result == {"revision": 3, "index": 3}
    kv = feed.sm.kv.get("a")
    assert kv is not None
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (b"2", 1, 3, 2)
    assert feed.sm.kv.revision == 3


def test_put_prev_revision_zero_means_must_not_exist(feed: Feeder) -> None:
    assert result(feed(Put("a", b"1", prev_revision=0)))["revision"] == 1
    failed = feed(Put("a", b"2", prev_revision=0))
    assert result(failed) == {
        "error": "compare_failed",
        "message": "key 'a' has mod_revision 1, not 0",
        "index": 2,
        "revision": 1,
        "mod_revision": 1,
    }
    assert failed.events == ()
    kv = feed.sm.kv.get("a")
    assert kv is not None
    assert kv.value == b"1"


def test_put_prev_revision_is_compare_and_set_on_mod_revision(feed: Feeder) -> None:
    feed(Put("a", b"1"))
    feed(Put("other", b"x"))
    assert result(feed(Put("a", b"2", prev_revision=2)))["error"] == "compare_failed"
    assert result(feed(Put("a", b"2", prev_revision=1))) == {"revision": 3, "index": 4}
    assert result(feed(Put("new", b"n", prev_revision=5)))["mod_revision"] == 0


def test_put_with_unknown_lease_changes_nothing(feed: Feeder) -> None:
    before = state(feed)
    applied = feed(Put("a", b"1", lease=42))
    assert result(applied)["error"] == "lease_not_found"
    assert result(applied)["revision"] == 0
    assert state(feed) == before


def test_delete_reports_whether_it_deleted(feed: Feeder) -> None:
    missing = feed(Delete("a"))
    assert missing.result == {"revision": 0, "index": 1, "deleted": 0}
    assert missing.events == ()
    feed(Put("a", b"1"))
    gone = feed(Delete("a"))
    assert gone.result == {"revision": 2, "index": 3, "deleted": 1}
    assert gone.events == (Event(EventType.DELETE, "a", b"", 2, 0, 0, 0),)
    assert feed.sm.kv.get("a") is None
    recreated = feed(Put("a", b"again"))
    assert recreated.events[0].create_revision == 3
    assert recreated.events[0].version == 1


def test_delete_with_prev_revision(feed: Feeder) -> None:
    feed(Put("a", b"1"))
    assert result(feed(Delete("a", prev_revision=7)))["error"] == "compare_failed"
    assert feed.sm.kv.get("a") is not None
    assert result(feed(Delete("a", prev_revision=1)))["deleted"] == 1


def test_range_is_sorted_prefix_scan_with_limit(feed: Feeder) -> None:
    for key in ["b/2", "a", "b/1", "b0", "b/3", "c"]:
        feed(Put(key, key.encode()))
    keys, values, more = feed.sm.kv.range("b/")
    assert keys == ["b/1", "b/2", "b/3"]
    assert [v.value for v in values] == [b"b/1", b"b/2", b"b/3"]
    assert not more
    keys, _, more = feed.sm.kv.range("b/", limit=2)
    assert keys == ["b/1", "b/2"]
    assert more
    _, _, more = feed.sm.kv.range("b/", limit=3)
    assert not more
    keys, _, _ = feed.sm.kv.range("")
    assert keys == ["a", "b/1", "b/2", "b/3", "b0", "c"]
    assert feed.sm.kv.range("zz") == ([], [], False)


def test_txn_success_writes_at_one_revision_and_reads_its_own_writes(feed: Feeder) -> None:
    feed(Put("x", b"old"))
    feed(Put("gone", b"g"))
    cmd = Txn(
        (Compare(CompareTarget.VALUE, CompareOp.EQUAL, "x", b"old"),),
        (Put("x", b"new"), Put("y", b"1"), Delete("gone"), Delete("absent"), Get("x"), Range("")),
        (Put("failed", b"!"),),
    )
    applied = feed(cmd)
    item_x = {
        "key": "x",
        "value": b"new",
        "create_revision": 1,
        "mod_revision": 3,
        "version": 2,
        "lease": 0,
    }
    item_y = {**item_x, "key": "y", "value": b"1", "create_revision": 3, "version": 1}
    assert applied.result == {
        "succeeded": True,
        "revision": 3,
        "index": 3,
        "results": [
            {"revision": 3},
            {"revision": 3},
            {"deleted": 1},
            {"deleted": 0},
            {"kv": item_x},
            {"items": [item_x, item_y], "more": False},
        ],
    }
    assert [(e.type, e.key, e.revision) for e in applied.events] == [
        (EventType.PUT, "x", 3),
        (EventType.PUT, "y", 3),
        (EventType.DELETE, "gone", 3),
    ]
    assert feed.sm.kv.get("failed") is None


def test_txn_failure_branch_and_read_only_txn_keep_the_revision(feed: Feeder) -> None:
    feed(Put("x", b"1"))
    cmd = Txn(
        (Compare(CompareTarget.VERSION, CompareOp.GREATER, "x", 1),),
        (Delete("x"),),
        (Get("x"), Get("nope")),
    )
    applied = feed(cmd)
    assert result(applied)["succeeded"] is False
    assert result(applied)["revision"] == 1
    assert result(applied)["results"][1] == {"kv": None}
    assert result(applied)["results"][0]["kv"]["value"] == b"1"
    assert applied.events == ()


@pytest.mark.parametrize(
    ("target", "op", "value", "holds"),
    [
        (CompareTarget.VALUE, CompareOp.EQUAL, b"v", True),
        (CompareTarget.VALUE, CompareOp.NOT_EQUAL, b"v", False),
        (CompareTarget.VALUE, CompareOp.LESS, b"w", True),
        (CompareTarget.VALUE, CompareOp.GREATER, b"w", False),
        (CompareTarget.VERSION, CompareOp.EQUAL, 2, True),
        (CompareTarget.CREATE_REVISION, CompareOp.EQUAL, 2, True),
        (CompareTarget.MOD_REVISION, CompareOp.EQUAL, 3, True),
        (CompareTarget.MOD_REVISION, CompareOp.LESS, 3, False),
        (CompareTarget.LEASE, CompareOp.EQUAL, 2, True),
        (CompareTarget.LEASE, CompareOp.GREATER, 2, False),
        (CompareTarget.LEASE, CompareOp.NOT_EQUAL, 0, True),
    ],
)
def test_txn_compare_targets_and_ops(
    feed: Feeder, target: CompareTarget, op: CompareOp, value: bytes | int, holds: bool
) -> None:
    feed(Put("first", b"0"))  # revision 1
    feed(LeaseGrant(60))  # lease 2
    feed(Put("k", b"u", lease=2))  # revision 2: create_revision
    feed(Put("k", b"v", lease=2))  # revision 3: mod_revision, version 2
    applied = feed(Txn((Compare(target, op, "k", value),)))
    assert result(applied)["succeeded"] is holds


def test_txn_compares_on_an_absent_key(feed: Feeder) -> None:
    def holds(target: CompareTarget, op: CompareOp, value: bytes | int) -> bool:
        ok: bool = result(feed(Txn((Compare(target, op, "absent", value),))))["succeeded"]
        return ok

    assert not holds(CompareTarget.VALUE, CompareOp.NOT_EQUAL, b"x")
    assert holds(CompareTarget.VERSION, CompareOp.EQUAL, 0)
    assert holds(CompareTarget.CREATE_REVISION, CompareOp.EQUAL, 0)
    assert holds(CompareTarget.MOD_REVISION, CompareOp.LESS, 1)


def test_txn_with_unknown_lease_is_atomic(feed: Feeder) -> None:
    feed(Put("a", b"1"))
    before = state(feed)
    applied = feed(Txn((), (Delete("a"), Put("b", b"2", lease=9))))
    assert result(applied)["error"] == "lease_not_found"
    assert applied.events == ()
    assert state(feed) == before


def test_lease_ids_are_grant_indexes_and_revoke_deletes_bound_keys(feed: Feeder) -> None:
    feed(Put("plain", b"p"))
    grant = feed(LeaseGrant(30))
    assert grant.result == {"id": 2, "ttl": 30, "revision": 1, "index": 2}
    other = result(feed(LeaseGrant(5)))["id"]
    assert other == 3
    feed(Put("b", b"1", lease=2))
    feed(Put("a", b"1", lease=2))
    feed(Put("moved", b"1", lease=2))
    feed(Put("moved", b"2", lease=other))  # rebinding detaches from lease 2
    feed(Put("c", b"1", lease=2))
    feed(Put("c", b"2"))  # a put without lease detaches (etcd)
    assert feed.sm.leases.keys(2) == ["a", "b"]
    revision = feed.sm.kv.revision
    revoked = feed(LeaseRevoke(2))
    assert revoked.result == {"revision": revision + 1, "index": 10, "deleted": 2}
    assert [(e.type, e.key, e.revision) for e in revoked.events] == [
        (EventType.DELETE, "a", revision + 1),
        (EventType.DELETE, "b", revision + 1),
    ]
    assert feed.sm.kv.get("moved") is not None
    assert feed.sm.kv.get("c") is not None
    assert 2 not in feed.sm.leases
    assert result(feed(LeaseRevoke(2)))["error"] == "lease_not_found"
    assert result(feed(Put("x", b"1", lease=2)))["error"] == "lease_not_found"


def test_deleting_a_leased_key_unbinds_it(feed: Feeder) -> None:
    feed(LeaseGrant(10))
    feed(Put("k", b"1", lease=1))
    feed(Delete("k"))
    assert feed.sm.leases.keys(1) == []
    revoked = feed(LeaseRevoke(1))
    assert revoked.result == {"revision": 2, "index": 4, "deleted": 0}
    assert revoked.events == ()


def test_log_append_keeps_index_and_term(feed: Feeder) -> None:
    feed.term = 4
    applied = feed(LogAppend(b"cmd-1"))
    assert applied.result == {"index": 1, "term": 4}
    assert applied.record is not None
    assert (applied.record.index, applied.record.term, applied.record.data) == (1, 4, b"cmd-1")
    feed(Put("k", b"v"))
    feed(LogAppend(b"cmd-2"))
    assert [r.data for r in feed.sm.oplog.log_since(1)] == [b"cmd-1", b"cmd-2"]
    assert [r.index for r in feed.sm.oplog.log_since(2)] == [3]
    assert feed.sm.kv.revision == 1


def test_a_bad_command_in_the_log_is_an_error_result(feed: Feeder) -> None:
    feed(Put("a", b"1"))
    before = state(feed)
    applied = feed.raw(b"\x92\x01\xa1k")
    assert result(applied)["error"] == "invalid_command"
    assert result(applied)["index"] == 2
    assert "put takes 4 fields" in result(applied)["message"]
    assert feed.sm.applied_index == 2
    assert state(feed) == before


def test_noop_and_conf_change_entries_only_advance_applied(feed: Feeder) -> None:
    before = state(feed)
    assert feed.raw(b"") == Applied(None)
    change = repr(ConfChange(ConfChangeType.REMOVE, "n2")).encode()
    conf = Entry(1, 2, EntryType.CONF_CHANGE, data=change)
    assert feed.sm.apply(conf) == Applied(None)
    assert feed.sm.applied_index == 2
    assert state(feed) == before


def test_applying_out_of_order_is_a_caller_bug(feed: Feeder) -> None:
    feed(Put("a", b"1"))
    with pytest.raises(ValueError, match="not after the applied index 1"):
        feed.sm.apply(Entry(1, 1, data=b""))


def test_duplicate_request_returns_cached_result_and_changes_nothing(feed: Feeder) -> None:
    original = feed(Put("a", b"1"), client="req-1", seq=1)
    feed(Put("a", b"2"))
    before = state(feed)
    again = feed(Put("a", b"1"), client="req-1", seq=1)
    assert again == Applied(original.result)
    assert state(feed) == before
    assert feed.sm.kv.revision == 2


def test_duplicate_of_a_failed_request_stays_failed(feed: Feeder) -> None:
    first = feed(Put("a", b"1", prev_revision=3), client="c", seq=1)
    feed(Put("a", b"0"))
    feed(Put("a", b"0"))
    feed(Put("a", b"0"))  # now mod_revision 3: re-applying would succeed
    assert feed(Put("a", b"1", prev_revision=3), client="c", seq=1).result == first.result


def test_stale_session_request_is_refused(feed: Feeder) -> None:
    feed(LogAppend(b"1"), client="c", seq=1)
    feed(LogAppend(b"2"), client="c", seq=2)
    stale = feed(LogAppend(b"1"), client="c", seq=1)
    assert result(stale)["error"] == "stale_request"
    assert len(feed.sm.oplog) == 2


def test_watch_history_receives_applied_events(feed: Feeder) -> None:
    feed(Put("a/1", b"1"))
    feed(Put("b/1", b"1"))
    feed(Txn((), (Put("a/2", b"2"), Delete("a/1"))))
    assert [(e.key, e.revision) for e in feed.sm.watch.events_since(1, "a/")] == [
        ("a/1", 1),
        ("a/2", 3),
        ("a/1", 3),
    ]
    assert [e.key for e in feed.sm.watch.events_since(2)] == ["b/1", "a/2", "a/1"]
    assert feed.sm.watch.events_since(4) == []
