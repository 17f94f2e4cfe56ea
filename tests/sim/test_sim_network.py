"""The simulated network: FIFO links, reordering, loss, duplication and cut links."""

from __future__ import annotations

from raftpod_sidecar.raft.messages import Message, MessageType
from raftpod_sidecar.sim.network import LinkFaults, Network


def msg(frm: str, to: str, tag: int) -> Message:
    return Message(MessageType.HEARTBEAT, to, frm, index=tag)


def drain(network: Network, until: int = 100) -> list[Message]:
    out: list[Message] = []
    for now in range(until + 1):
        out.extend(network.due(now))
    return out


def test_links_are_fifo_without_reordering() -> None:
    network = Network((1, 5), (1, 30), "t")
    for tag in range(50):
        network.send(msg("n1", "n2", tag), tag // 10)
    assert [m.index for m in drain(network)] == list(range(50))


def test_reordering_reorders() -> None:
    network = Network((1, 5), (1, 30), "t")
    network.faults = LinkFaults(reorder=True)
    for tag in range(50):
        network.send(msg("n1", "n2", tag), 0)
    tags = [m.index for m in drain(network)]
    assert sorted(tags) == list(range(50))
    assert tags != list(range(50))


def test_loss_and_duplication() -> None:
    lossy = Network((1, 2), (1, 2), "t")
    lossy.faults = LinkFaults(drop_rate=1.0)
    lossy.send(msg("n1", "n2", 1), 0)
    assert drain(lossy) == [] and lossy.dropped == 1
    doubling = Network((1, 2), (1, 2), "t")
    doubling.faults = LinkFaults(duplicate_rate=1.0)
    doubling.send(msg("n1", "n2", 1), 0)
    assert [m.index for m in drain(doubling)] == [1, 1]


def test_one_way_cut_loses_later_messages_not_those_in_flight() -> None:
    network = Network((3, 3), (3, 3), "t")
    network.send(msg("n1", "n2", 1), 0)  # already on the wire when the link is cut
    network.cut("n1", "n2")
    network.send(msg("n1", "n2", 2), 0)
    network.send(msg("n2", "n1", 3), 0)
    assert [m.index for m in drain(network, 10)] == [1, 3]
    assert not network.reachable("n1", "n2") and network.reachable("n2", "n1")
    network.heal()
    network.send(msg("n1", "n2", 4), 20)
    assert [m.index for m in drain(network, 30)] == [4]


def test_reordering_has_a_long_tail() -> None:
    network = Network((1, 1), (1, 5), "t", slow_latency=(50, 60))
    network.faults = LinkFaults(reorder=True, slow_rate=0.5)
    for tag in range(40):
        network.send(msg("n1", "n2", tag), 0)
    early, late = drain(network, 10), drain(network, 100)
    assert early and late and len(early) + len(late) == 40


def test_partition_cuts_both_ways_between_sides_only() -> None:
    network = Network((1, 1), (1, 1), "t")
    network.partition(["n1"], ["n2", "n3"])
    for frm, to in (("n1", "n2"), ("n3", "n1"), ("n2", "n3")):
        network.send(msg(frm, to, 0), 0)
    assert [(m.frm, m.to) for m in drain(network, 5)] == [("n2", "n3")]
    assert network.partitioned


def test_a_slow_link_delivers_late_until_mended() -> None:
    network = Network((1, 1), (1, 5), "t", slow_latency=(50, 60))
    network.faults = LinkFaults(reorder=True)
    network.slow_down("n1", "n2")
    network.send(msg("n1", "n2", 1), 0)
    network.send(msg("n2", "n1", 2), 0)
    assert [m.index for m in drain(network, 10)] == [2]
    network.heal_slow()
    network.send(msg("n1", "n2", 3), 0)
    assert [m.index for m in drain(network, 10)] == [3]
    assert [m.index for m in drain(network, 100)] == [1]
