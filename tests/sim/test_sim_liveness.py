"""After every fault is healed a leader appears and a fresh write commits, in bounded time."""

from __future__ import annotations

import pytest

from raftpod_sidecar.raft.messages import Role
from raftpod_sidecar.sim.invariants import LIVENESS, Violation
from raftpod_sidecar.sim.options import FAULT_KINDS, SimOptions
from raftpod_sidecar.sim.runner import HEAL_BUDGET, Simulation


@pytest.mark.parametrize("seed", range(5))
def test_cluster_recovers_after_healing(seed: int) -> None:
    sim = Simulation(SimOptions(seed, nodes=3, steps=1500, faults=FAULT_KINDS))
    sim.fault_phase()
    took = sim.heal_and_probe()
    assert 0 < took < HEAL_BUDGET
    assert sim.workload.probe_done
    leader = sim.cluster.leader()
    assert leader is not None and leader.core().role == Role.LEADER
    assert all(n.up for n in sim.cluster.nodes.values() if not n.removed)


def test_recovery_after_isolating_the_leader() -> None:
    sim = Simulation(SimOptions(3, nodes=5, steps=300, faults=()))
    sim.fault_phase()
    for _ in range(400):  # the workload may have just removed the leader: wait for the next
        leader = sim.cluster.leader()
        if leader is not None:
            break
        sim.cluster.step()
    assert leader is not None
    others = [n for n in sim.cluster.nodes if n != leader.id]
    sim.cluster.network.partition([leader.id], others)
    for _ in range(400):
        sim.cluster.step()
    new_leader = sim.cluster.leader()
    assert new_leader is not None and new_leader.id != leader.id
    assert sim.heal_and_probe() < HEAL_BUDGET


def test_a_cluster_that_lost_its_majority_for_good_is_reported() -> None:
    sim = Simulation(SimOptions(1, nodes=3, steps=200, faults=()))
    sim.fault_phase()
    for node_id in ("n2", "n3"):
        sim.cluster.nodes[node_id].removed = True  # gone for good: healing will not restart them
        sim.cluster.crash(node_id)
    with pytest.raises(Violation) as caught:
        sim.heal_and_probe()
    assert caught.value.invariant == LIVENESS
