"""Follower-to-leader proposal forwarding (PROP): what is sent, what a leader appends,
and every PROP the core must drop without touching its log, term or role."""

from __future__ import annotations

import pytest
from raft_env import Cluster

from raftpod_sidecar.raft.confchange import encode_conf_change
from raftpod_sidecar.raft.errors import NotLeaderError
from raftpod_sidecar.raft.messages import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    MessageType,
    Role,
)
from raftpod_sidecar.raft.node import RawNode

M = MessageType


def led_by_n1() -> Cluster:
    """Three nodes, n1 elected and its no-op applied everywhere; no message in flight."""
    c = Cluster(seed=3, pre_vote=False)
    c.add_nodes(3)
    c.peers["n1"].node.campaign()
    c.stabilize(log=False)
    assert c.leader() == "n1" and c.peers["n2"].node.lead == "n1"
    return c


def prop(to: str, frm: str, term: int, *entries: Entry) -> Message:
    return Message(M.PROP, to, frm, term, entries=entries)


def write(data: bytes, client: str = "c1", seq: int = 1) -> Entry:
    return Entry(0, 0, EntryType.NORMAL, data, client, seq)


def assert_dropped(node: RawNode, m: Message) -> None:
    """Stepping ``m`` counts one dropped message and changes nothing else we can see."""
    before = (node.dropped_messages, node.log.last_index(), node.term, node.role, node.lead)
    node.step(m)
    after = (node.dropped_messages, node.log.last_index(), node.term, node.role, node.lead)
    assert after == (before[0] + 1, *before[1:])
    assert not [x for x in node.ready().messages if x.type == M.APP]


def test_forward_sends_one_prop_to_the_leader() -> None:
    c = led_by_n1()
    n2 = c.peers["n2"].node
    assert n2.forward(b"w", "cli", 7) == "n1"
    c.process_ready("n2", log=False)
    assert c.inflight == [prop("n1", "n2", n2.term, write(b"w", "cli", 7))]


def test_forwarded_entry_is_appended_by_the_leader_then_applied_everywhere() -> None:
    c = led_by_n1()
    leader = c.peers["n1"].node
    c.peers["n3"].node.forward(b"w", "cli", 7)
    c.stabilize(log=False)
    last = leader.log.last_index()
    (entry,) = c.peers["n1"].storage.entries(last, last + 1, 1 << 20)
    assert entry == Entry(leader.term, last, EntryType.NORMAL, b"w", "cli", 7)
    for nid, peer in c.peers.items():
        assert peer.applied == [b"w"], nid
        assert peer.applied_index == last == peer.node.log.committed, nid


def test_leader_gives_each_forwarded_entry_its_own_term_and_index() -> None:
    c = led_by_n1()
    leader = c.peers["n1"].node
    first = leader.log.last_index() + 1
    stale = Entry(99, 99, EntryType.NORMAL, b"a", "cli", 1)  # a sender's term/index mean nothing
    leader.step(prop("n1", "n2", leader.term, stale, write(b"b", "cli", 2)))
    c.stabilize(log=False)
    entries = c.peers["n1"].storage.entries(first, first + 2, 1 << 20)
    assert entries == [
        Entry(leader.term, first, EntryType.NORMAL, b"a", "cli", 1),
        Entry(leader.term, first + 1, EntryType.NORMAL, b"b", "cli", 2),
    ]
    assert all(p.applied == [b"a", b"b"] for p in c.peers.values())


def test_forward_on_the_leader_raises() -> None:
    c = led_by_n1()
    leader = c.peers["n1"].node
    with pytest.raises(NotLeaderError):
        leader.forward(b"w", "cli", 1)
    assert not leader.has_ready()


def test_forward_without_a_known_leader_raises() -> None:
    c = Cluster(seed=3, pre_vote=False)
    c.add_nodes(3)
    n2 = c.peers["n2"].node
    assert n2.role == Role.FOLLOWER and n2.lead == ""
    with pytest.raises(NotLeaderError):
        n2.forward(b"w", "cli", 1)
    c.process_ready("n2", log=False)
    assert c.inflight == []


def test_follower_drops_a_prop() -> None:
    c = led_by_n1()
    n3 = c.peers["n3"].node
    assert_dropped(n3, prop("n3", "n2", n3.term, write(b"w")))


def test_leader_drops_a_prop_during_a_transfer() -> None:
    c = led_by_n1()
    leader = c.peers["n1"].node
    leader.transfer_leadership("n3")
    assert leader.status().transferee == "n3"
    assert_dropped(leader, prop("n1", "n2", leader.term, write(b"w")))


@pytest.mark.parametrize("delta", [1, -1], ids=["higher-term", "lower-term"])
def test_prop_of_another_term_is_dropped_and_never_moves_the_term(delta: int) -> None:
    c = led_by_n1()
    leader = c.peers["n1"].node
    assert_dropped(leader, prop("n1", "n2", leader.term + delta, write(b"w")))
    assert leader.role == Role.LEADER


def test_prop_from_a_non_member_is_dropped() -> None:
    c = led_by_n1()
    leader = c.peers["n1"].node
    assert_dropped(leader, prop("n1", "n9", leader.term, write(b"w")))


REMOVE_N3 = encode_conf_change(ConfChange(ConfChangeType.REMOVE, "n3"))
CONF_ENTRY = Entry(0, 0, EntryType.CONF_CHANGE, REMOVE_N3)  # membership never goes by PROP


@pytest.mark.parametrize(
    "entries",
    [(), (CONF_ENTRY,), (write(b"w"), CONF_ENTRY)],
    ids=["no-entries", "conf-change", "normal-then-conf-change"],
)
def test_prop_without_entries_or_with_a_conf_change_is_invalid(entries: tuple[Entry, ...]) -> None:
    c = led_by_n1()
    leader = c.peers["n1"].node
    assert_dropped(leader, prop("n1", "n2", leader.term, *entries))
