"""Scaling planning through Raft membership changes: ONE next step from observed state.

Up (one member at a time): add the next ordinal as a learner, grow the
StatefulSet so its pod starts (it ``--join``s), wait until it is ready and
within ``maxLagEntries``, then promote it to voter. Down: the highest ordinal
first; if it leads, leadership moves to the most caught-up remaining voter;
then it leaves the Raft configuration, and only once no member above the
desired count is left does the StatefulSet shrink; then the PVCs of the
removed members are deleted. A step that would leave fewer healthy voters than
a majority of the new configuration is Blocked instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftpod_operator.actions import (
    Action,
    AddLearner,
    Blocked,
    DeletePvc,
    Done,
    Promote,
    RemoveMember,
    SetReplicas,
    TransferLeadership,
    Wait,
)
from raftpod_operator.manifests import Cluster, member_ordinals, peer_address, pod_name
from raftpod_operator.spec import majority
from raftpod_operator.status import ClusterView, PodObservation


def pvc_name(c: Cluster, ordinal: int) -> str:
    """The StatefulSet's claim for ``ordinal`` (volumeClaimTemplate ``data``)."""
    return f"data-{pod_name(c, ordinal)}"


def plan_scaling(
    c: Cluster,
    *,
    desired: int,
    sts_replicas: int,
    pods: Sequence[PodObservation],
    view: ClusterView,
    pvcs: Sequence[str],
) -> Action:
    """The next step that brings the voters to ``desired`` and the StatefulSet with them."""
    if view.leader is None:
        return Wait("no leader yet: membership changes need one")
    config = [m for m in view.members.values() if m.in_config]
    ordinals = member_ordinals(c, [m.name for m in config])
    above = sorted(
        (m for m in config if ordinals.get(m.name, -1) >= desired), key=lambda m: -ordinals[m.name]
    )
    if above:
        victim = above[0]
        if victim.name == view.leader:
            target = view.transfer_target({m.name for m in above})
            if target is None:
                return Blocked(f"no healthy voter below ordinal {desired} can take over leadership")
            return TransferLeadership(victim.name, target.name)
        if victim.voter:
            remaining = [m for m in view.voters if m.name != victim.name]
            healthy = [m for m in remaining if m.healthy]
            if len(healthy) < majority(len(remaining)):
                return Blocked(
                    f"removing {victim.name} would leave {len(healthy)} healthy of "
                    f"{len(remaining)} voters, below a majority"
                )
        return RemoveMember(victim.name)
    if sts_replicas > desired:
        return SetReplicas(desired)
    running = set(member_ordinals(c, [p.name for p in pods]).values())
    for claim in sorted(pvcs):
        ordinal = _claim_ordinal(c, claim)
        if ordinal is not None and ordinal >= sts_replicas and ordinal not in running:
            return DeletePvc(claim)
    voter_ordinals = {ordinals[m.name] for m in view.voters if m.name in ordinals}
    missing = [i for i in range(desired) if i not in voter_ordinals]
    if not missing:
        return Done()
    ordinal = missing[0]
    name = pod_name(c, ordinal)
    member = view.members.get(name)
    if member is None or not member.in_config:
        if not view.has_quorum:
            return Blocked("no healthy majority: not adding members now")
        return AddLearner(name, peer_address(c, name))
    if sts_replicas <= ordinal:
        return SetReplicas(ordinal + 1)
    if not member.healthy:
        return Wait(f"waiting for learner {name} to become ready and catch up")
    new_voters = len(view.voters) + 1
    if len(view.healthy_voters) + 1 < majority(new_voters):
        return Blocked(f"promoting {name} would leave the new configuration without a majority")
    return Promote(name)


def _claim_ordinal(c: Cluster, claim: str) -> int | None:
    prefix = f"data-{c.name}-"
    tail = claim[len(prefix) :] if claim.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None
