"""Crash-restart from the simulated disk only, and the Ready order the cluster follows."""

from __future__ import annotations

from raftpod_sidecar.raft.messages import ConfChange, ConfChangeType, Role
from raftpod_sidecar.sim.cluster import Cluster, CrashPoint, SimNode
from raftpod_sidecar.sim.trace import Trace


def settled_cluster(nodes: int = 3) -> tuple[Cluster, SimNode]:
    cluster = Cluster(seed=5, nodes=nodes, trace=Trace())
    for _ in range(2000):
        cluster.step()
        leader = cluster.leader()
        if leader is not None and leader.sm.applied >= 2:
            return cluster, leader
    raise AssertionError("no leader within 2000 time units")


def test_a_crash_loses_what_was_not_persisted() -> None:
    cluster, leader = settled_cluster()
    index, _ = leader.core().propose(b"unsaved", "c1", 1)
    cluster.crash(leader.id)  # before its Ready was handled
    assert leader.disk.last_index() < index
    cluster.start(leader.id)
    raw = leader.core()
    assert raw.log.last_index() < index and raw.role == Role.FOLLOWER


def test_crash_after_persist_keeps_the_entry_but_sends_nothing() -> None:
    cluster, leader = settled_cluster()
    index, _ = leader.core().propose(b"saved", "c1", 1)
    leader.crash_point = CrashPoint.AFTER_PERSIST
    in_flight = len(cluster.network)
    cluster.handle_ready(leader)
    assert not leader.up
    assert leader.disk.last_index() == index
    assert len(cluster.network) == in_flight


def test_restart_restores_the_state_machine_from_the_snapshot_then_replays() -> None:
    cluster, leader = settled_cluster()
    for seq in range(1, 6):
        leader.core().propose(b"x%d" % seq, "c1", seq)
        cluster.step()
    for _ in range(200):
        cluster.step()
    follower = next(n for n in cluster.live() if n is not leader)
    commands = list(follower.sm.commands)
    assert len(commands) == 5
    assert cluster.take_snapshot(follower, keep=0)
    snap_index = follower.disk.storage.snapshot().meta.index
    cluster.crash(follower.id)
    cluster.start(follower.id)
    assert follower.sm.applied == snap_index and follower.sm.commands == commands
    leader.core().propose(b"after", "c1", 6)
    for _ in range(200):
        cluster.step()
    assert follower.sm.commands == [*commands, ("c1", 6, b"after")]


def test_a_new_node_catches_up_from_a_snapshot() -> None:
    cluster, leader = settled_cluster()
    leader.core().propose(b"before", "c1", 1)
    for _ in range(50):
        cluster.step()
    assert cluster.take_snapshot(leader, keep=0)
    cluster.step()

    leader.core().propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "n4", "n4:7000"))
    joiner = cluster.add_node("n4")
    for _ in range(400):
        cluster.step()
    assert cluster.stats.snapshots_installed >= 1
    assert ("c1", 1, b"before") in joiner.sm.commands
    assert joiner.sm.applied == leader.sm.applied
