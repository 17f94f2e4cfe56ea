"""Writes a follower forwards to its leader (PROP): acknowledged by session, re-sent safely."""

from __future__ import annotations

import pytest

from raftpod_sidecar.raft import node as core
from raftpod_sidecar.raft.messages import Message, MessageType, Role
from raftpod_sidecar.sim.cluster import Cluster, SimNode
from raftpod_sidecar.sim.invariants import LIVENESS, Violation
from raftpod_sidecar.sim.options import SimOptions
from raftpod_sidecar.sim.runner import Simulation
from raftpod_sidecar.sim.trace import Trace
from raftpod_sidecar.sim.workload import Client, Workload

STEPS = 600


def settled() -> tuple[Cluster, Workload, SimNode, SimNode]:
    """A 3-node cluster with a leader, a workload that always forwards, and one follower."""
    cluster = Cluster(seed=5, nodes=3, trace=Trace(enabled=True))
    workload = Workload(cluster, seed=5, founders=3, lease_checked=True)
    workload.active = False  # only the writes a test starts
    for client in workload.clients:
        client.forward_share = 1.0
    for _ in range(STEPS):
        cluster.step()
        leader = cluster.leader()
        if leader is not None and leader.sm.applied >= 2:
            follower = next(n for n in cluster.live() if n is not leader)
            if follower.core().lead == leader.id:
                return cluster, workload, leader, follower
    raise AssertionError(f"no settled leader within {STEPS} time units")


def write_through(cluster: Cluster, workload: Workload, client: Client, via: SimNode) -> None:
    client.busy, client.target = True, via.id
    for _ in range(STEPS):
        workload.act()
        cluster.step()
        if not client.busy:
            return
    raise AssertionError(f"{client.id} seq={client.seq} not acknowledged in {STEPS} time units")


def session_copies(node: SimNode, client: str, seq: int) -> list[int]:
    disk = node.disk
    entries = (disk.entry(i) for i in range(disk.first_index(), disk.last_index() + 1))
    return [e.index for e in entries if e is not None and (e.client, e.seq) == (client, seq)]


def test_a_forwarded_write_is_acknowledged_by_the_follower_where_it_took_effect() -> None:
    cluster, workload, leader, follower = settled()
    client = workload.clients[0]
    write_through(cluster, workload, client, follower)
    assert follower.core().role == Role.FOLLOWER
    [index] = session_copies(leader, client.id, 1)
    assert cluster.stats.forwards == 1 and client.acked == 1
    assert f"c1 forward seq=1 via {follower.id} to {leader.id}" in "\n".join(cluster.trace.lines)
    assert f"c1 acked seq=1 at {index} on {follower.id}" in cluster.trace.lines[-1]


def test_a_resent_proposal_is_logged_twice_but_takes_effect_once() -> None:
    cluster, workload, leader, follower = settled()
    client = workload.clients[0]
    write_through(cluster, workload, client, follower)
    follower.core().forward(b"c1/1", client.id, 1)  # what a timed-out resend does
    write_through(cluster, workload, client, follower)  # seq 2, maybe ahead of the resend
    for _ in range(STEPS):
        cluster.step()
        if all(n.sm.applied == leader.disk.last_index() for n in cluster.live()):
            break
    first, again = session_copies(leader, client.id, 1)
    assert first < again <= leader.sm.applied
    for node in cluster.live():
        assert node.sm.applied == leader.sm.applied
        assert node.sm.command_keys() == [("c1", 1), ("c1", 2)]


def test_a_forwarded_write_goes_again_to_the_next_leader() -> None:
    cluster, workload, leader, follower = settled()
    client = workload.clients[0]
    client.busy, client.target = True, follower.id
    workload.act()  # the PROP leaves for the leader...
    cluster.crash(leader.id)  # ...which dies before it arrives
    write_through(cluster, workload, client, follower)
    trace = "\n".join(cluster.trace.lines)
    new_leader = cluster.leader()
    assert new_leader is not None and new_leader.id != leader.id
    assert f"c1 resend seq=1 via {follower.id} to {new_leader.id}" in trace
    assert cluster.stats.forwards == 2 and client.acked == 1


def test_the_liveness_probe_fails_if_leaders_ignore_forwarded_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def ignore(node: core.RawNode, m: Message) -> None:
        pass

    monkeypatch.setitem(core._PEER_HANDLERS, MessageType.PROP, ignore)
    sim = Simulation(SimOptions(0, nodes=3, steps=300, faults=()))
    sim.fault_phase()  # writes still commit: clients fail over to the leader after a timeout
    assert sim.workload.acked > 0
    with pytest.raises(Violation) as caught:
        sim.heal_and_probe()
    assert caught.value.invariant == LIVENESS


def test_forwarding_survives_faults_in_a_full_run() -> None:
    sim = Simulation(SimOptions(3, nodes=3, steps=1500))
    sim.fault_phase()
    sim.heal_and_probe()
    forwards, acked = sim.cluster.stats.forwards, sim.workload.acked
    assert forwards > 10 and acked > 10, (forwards, acked)
