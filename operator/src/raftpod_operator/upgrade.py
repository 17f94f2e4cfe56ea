"""Rolling upgrade planning (SPEC §4): which ONE step to take next, from observed state only.

Pods carry their StatefulSet revision (``controller-revision-hash``); the
target is the StatefulSet's ``updateRevision``. With ``updateStrategy:
OnDelete`` nothing restarts unless the operator deletes a pod, one at a time:
followers first (highest ordinal first), the leader last and only after it has
handed leadership to the most caught-up follower. Before each deletion every
other voter must be healthy (ready, reachable, within ``maxLagEntries``). A
restarted pod that is not ready and caught up within ``ready_timeout`` stops the
rollout (Blocked -> Degraded) instead of pressing on. Nothing is remembered
between rounds but the last status (`status.was_upgrading`), so an operator
restart re-plans the same step. With every pod at the target revision and no
rollout under way there is nothing to plan: a member that is down then is
Degraded, not Upgrading.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from raftpod_operator.actions import (
    Action,
    Blocked,
    DeletePod,
    Done,
    Paused,
    TransferLeadership,
    Wait,
)
from raftpod_operator.status import ClusterView, Member, PodObservation

READY_TIMEOUT = dt.timedelta(minutes=10)


def _ordinal(name: str) -> int:
    tail = name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else -1


def plan_upgrade(
    pods: Sequence[PodObservation],
    view: ClusterView,
    target_revision: str,
    *,
    paused: bool,
    was_upgrading: bool,
    now: dt.datetime,
    ready_timeout: dt.timedelta = READY_TIMEOUT,
) -> Action:
    """The next rollout step for ``pods`` towards ``target_revision``.

    ``was_upgrading``: the last round was rolling out, so a pod at the target
    revision that is not ready yet is the rollout's last restart coming back.
    """
    if paused:
        return Paused()
    outdated = [p for p in pods if p.revision != target_revision]
    if not outdated and not was_upgrading:
        return Done()
    terminating = sorted(p.name for p in pods if p.deleting)
    if terminating:
        return Wait(f"waiting for {', '.join(terminating)} to terminate and come back")
    by_name = {p.name: p for p in pods}
    recovering: list[Member] = []
    for member in view.voters:
        pod = by_name.get(member.name)
        if member.healthy or (pod is not None and pod.revision != target_revision):
            continue
        if pod is not None and pod.created is not None and now - pod.created > ready_timeout:
            return Blocked(
                f"{member.name} runs the new revision but is not ready and caught up after "
                f"{int(ready_timeout.total_seconds())}s; rollout stopped"
            )
        recovering.append(member)
    if not outdated:
        if recovering:
            return Wait(_waiting_for(recovering))
        return Done()
    if view.leader is None:
        return Blocked("no leader: rollout stopped until the cluster elects one")
    voters = view.voters
    order = sorted(outdated, key=lambda p: (p.name == view.leader, -_ordinal(p.name)))
    for pod in order:
        others_unhealthy = [m for m in voters if m.name != pod.name and not m.healthy]
        if others_unhealthy:
            continue
        if pod.name != view.leader:
            return DeletePod(pod.name)
        if len(voters) == 1:
            return DeletePod(pod.name)  # a single member has nobody to hand over to
        target = view.transfer_target({pod.name})
        if target is None:
            return Blocked(f"no healthy follower can take over leadership from {pod.name}")
        return TransferLeadership(pod.name, target.name)
    unhealthy = [m for m in voters if not m.healthy]
    if unhealthy and all(m in recovering for m in unhealthy):
        return Wait(_waiting_for(unhealthy))
    names = ", ".join(sorted(m.name for m in unhealthy))
    return Blocked(
        f"{names} unhealthy or lagging: restarting another member would put the majority at risk"
    )


def _waiting_for(members: Sequence[Member]) -> str:
    names = ", ".join(sorted(m.name for m in members))
    return f"waiting for {names} to become ready and caught up"
