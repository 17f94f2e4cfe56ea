"""What the cluster looks like, from the sidecars' own words, as RaftCluster status.

`parse_admin_status` reads one sidecar's ``GET /admin/status`` (the only place
that knows its JSON shape); `observe` merges the pods and the sidecars' views
into a `ClusterView` that the planners use; `derive_status` turns the view plus
what the planners decided (and why pods cannot be scheduled, see `scheduling.py`)
into the ``status`` object. All pure: the same observation always gives the same
status, and a condition keeps its ``lastTransitionTime`` while its status does
not change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from raftpod_operator.actions import Action, Blocked, Done, Paused, describe
from raftpod_operator.spec import majority


@dataclass(frozen=True)
class MemberConfig:
    """One entry of the Raft configuration as a node reports it."""

    id: str
    voter: bool
    address: str = ""
    match_index: int | None = None
    lag: int | None = None


@dataclass(frozen=True)
class NodeView:
    """One sidecar's ``/admin/status``."""

    id: str
    role: str
    term: int
    leader: str | None
    commit_index: int
    applied_index: int
    last_index: int
    members: tuple[MemberConfig, ...] = ()


def _int(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"/admin/status: {key} should be an integer, got {value!r}")
    return value


def parse_admin_status(raw: Any) -> NodeView:
    """Parse ``GET /admin/status``; `ValueError` when it does not have the documented shape.

    Shape: ``{"id", "role", "term", "leader", "commit_index", "applied_index",
    "last_index", "members": [{"id", "address", "voter", "match_index"?, "lag"?}]}``
    where ``match_index``/``lag`` are present on the leader's view only.
    """
    if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
        raise ValueError("/admin/status: expected an object with a string id")
    members = []
    for m in raw.get("members") or []:
        if not isinstance(m, Mapping) or not isinstance(m.get("id"), str):
            raise ValueError(f"/admin/status: bad member entry {m!r}")
        match = m.get("match_index")
        lag = m.get("lag")
        members.append(
            MemberConfig(
                id=m["id"],
                voter=bool(m.get("voter", True)),
                address=str(m.get("address", "")),
                match_index=match if isinstance(match, int) else None,
                lag=lag if isinstance(lag, int) else None,
            )
        )
    leader = raw.get("leader")
    return NodeView(
        id=raw["id"],
        role=str(raw.get("role", "unknown")).lower(),
        term=_int(raw, "term"),
        leader=leader if isinstance(leader, str) and leader else None,
        commit_index=_int(raw, "commit_index"),
        applied_index=_int(raw, "applied_index"),
        last_index=_int(raw, "last_index"),
        members=tuple(members),
    )


def _time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class PodObservation:
    """One pod as read from the API server, with its sidecar's view (None: unreachable).

    ``unschedulable`` is the scheduler's message while the pod is Pending because no
    node fits it (``PodScheduled`` False with reason ``Unschedulable``), else None.
    """

    name: str
    ready: bool
    revision: str
    created: dt.datetime | None = None
    deleting: bool = False
    view: NodeView | None = None
    unschedulable: str | None = None

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any], view: NodeView | None) -> PodObservation:
        """From a Pod object as the API returns it."""
        meta = pod.get("metadata") or {}
        conditions = (pod.get("status") or {}).get("conditions") or []
        return cls(
            name=meta.get("name", ""),
            ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
            revision=(meta.get("labels") or {}).get("controller-revision-hash", ""),
            created=_time(meta.get("creationTimestamp")),
            deleting=bool(meta.get("deletionTimestamp")),
            view=view,
            unschedulable=_unschedulable(conditions),
        )


def _unschedulable(conditions: Sequence[Mapping[str, Any]]) -> str | None:
    for c in conditions:
        if (c.get("type"), c.get("status"), c.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            return str(c.get("message") or "no node fits the pod")
    return None


UNSCHEDULABLE = "Unschedulable"  # the Degraded reason while a pod waits for a node

ROLE_NAMES = {
    "leader": "leader",
    "follower": "follower",
    "candidate": "candidate",
    "pre_candidate": "candidate",
}


@dataclass(frozen=True)
class Member:
    """A member (or a pod that is not one yet) as the status reports it."""

    name: str
    id: str
    role: str  # leader, follower, candidate, learner, unknown
    voter: bool
    in_config: bool
    healthy: bool
    lag: int | None
    revision: str
    ready: bool


@dataclass(frozen=True)
class ClusterView:
    """The merged observation the planners and the status work from."""

    leader: str | None
    term: int
    commit_index: int
    members: dict[str, Member] = field(default_factory=dict)

    @property
    def voters(self) -> list[Member]:
        return [m for m in self.members.values() if m.voter and m.in_config]

    @property
    def healthy_voters(self) -> list[Member]:
        return [m for m in self.voters if m.healthy]

    @property
    def has_quorum(self) -> bool:
        voters = self.voters
        return bool(voters) and len(self.healthy_voters) >= majority(len(voters))

    def transfer_target(self, excluding: set[str]) -> Member | None:
        """The most caught-up healthy voter outside ``excluding`` (ties: lowest name)."""
        pool = [m for m in self.healthy_voters if m.name not in excluding]
        return min(pool, key=lambda m: (m.lag or 0, m.name), default=None)


def _authority(views: Sequence[NodeView]) -> NodeView | None:
    """The view to trust for membership: the leader of the highest term, else the newest."""
    if not views:
        return None
    leaders = [v for v in views if v.role == "leader"]
    pool = leaders or list(views)
    return max(pool, key=lambda v: (v.term, v.commit_index, v.id))


def observe(pods: Sequence[PodObservation], max_lag: int) -> ClusterView:
    """Merge pods and sidecar views into one `ClusterView`."""
    views = [p.view for p in pods if p.view is not None]
    auth = _authority(views)
    if auth is None:
        strangers = {
            p.name: Member(
                p.name, p.name, "unknown", False, False, False, None, p.revision, p.ready
            )
            for p in pods
        }
        return ClusterView(None, 0, 0, strangers)
    leader = auth.id if auth.role == "leader" else None
    config = {m.id: m for m in auth.members}
    by_pod = {p.name: p for p in pods}
    members: dict[str, Member] = {}
    for member_id in sorted(set(config) | set(by_pod)):
        pod = by_pod.get(member_id)
        entry = config.get(member_id)
        own = pod.view if pod is not None else None
        lag = _lag(auth, entry, member_id, leader)
        if entry is None:
            role = "unknown"
        elif not entry.voter:
            role = "learner"
        elif own is not None:
            role = ROLE_NAMES.get(own.role, "follower")
        else:
            role = "unknown"
        ready = pod is not None and pod.ready and not pod.deleting
        healthy = (
            ready and own is not None and entry is not None and lag is not None and lag <= max_lag
        )
        members[member_id] = Member(
            name=member_id,
            id=member_id,
            role=role,
            voter=entry.voter if entry is not None else False,
            in_config=entry is not None,
            healthy=healthy,
            lag=lag,
            revision=pod.revision if pod is not None else "",
            ready=ready,
        )
    return ClusterView(leader, auth.term, auth.commit_index, members)


def _lag(
    auth: NodeView, entry: MemberConfig | None, member_id: str, leader: str | None
) -> int | None:
    if entry is None or leader is None:
        return None
    if member_id == leader:
        return 0
    if entry.lag is not None:
        return entry.lag
    if entry.match_index is not None:
        return max(0, auth.last_index - entry.match_index)
    return None


@dataclass(frozen=True)
class Activity:
    """What the planners decided this round, for phase and conditions."""

    kind: str | None = None  # "Upgrading", "Scaling" or None when idle
    message: str = ""
    blocked: str | None = None  # why a rollout or scale stopped (majority at risk)


def activity_for(kind: str, action: Action) -> Activity:
    """How a planner's step shows in phase and conditions."""
    if isinstance(action, Done):
        return Activity()
    if isinstance(action, Paused):
        return Activity(None, "rollout paused (spec.upgrade.paused)")
    if isinstance(action, Blocked):
        return Activity(kind, action.reason, blocked=action.reason)
    return Activity(kind, describe(action))


def was_upgrading(previous: Mapping[str, Any]) -> bool:
    """Whether the last status written said a rollout was in progress.

    A rollout's last restarted pod is at the new revision like every other pod, so
    only this tells "the rollout waits for its last pod" from "a member went down".
    """
    return any(
        c.get("type") == "Progressing"
        and c.get("status") == "True"
        and c.get("reason") == "Upgrading"
        for c in previous.get("conditions") or []
    )


def set_condition(
    previous: Sequence[Mapping[str, Any]],
    type_: str,
    *,
    status: bool,
    reason: str,
    message: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """A condition; ``lastTransitionTime`` stays as it was unless the status flipped."""
    text = "True" if status else "False"
    old = next((c for c in previous if c.get("type") == type_), None)
    since = (
        old["lastTransitionTime"]
        if old and old.get("status") == text and old.get("lastTransitionTime")
        else _stamp(now)
    )
    return {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }


def _stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def derive_phase(
    view: ClusterView,
    activity: Activity,
    bootstrapped: bool,
    restoring: bool,
    *,
    unschedulable: bool,
) -> str:
    """The one-word phase shown by ``kubectl get raft``.

    Upgrading and Scaling only while a planner is acting; a member that is down
    or not ready outside a rollout or scale, or a pod no node can take, is Degraded.
    """
    if not view.members:
        return "Pending"
    if not bootstrapped:
        return "Restoring" if restoring else "Bootstrapping"
    if unschedulable:
        return "Degraded"
    if restoring and activity.kind == "Scaling" and not activity.blocked:
        return "Restoring"  # the restored voter is joined by the others, one at a time
    if activity.blocked or not view.has_quorum or view.leader is None:
        return "Degraded"
    if activity.kind:
        return activity.kind
    if len(view.healthy_voters) < len(view.voters):
        return "Degraded"
    return "Running"


def derive_status(
    *,
    view: ClusterView,
    activity: Activity,
    desired_replicas: int,
    selector: str,
    bootstrapped: bool,
    restoring: bool,
    unschedulable: str | None,
    generation: int | None,
    previous: Mapping[str, Any],
    now: dt.datetime,
) -> dict[str, Any]:
    """The ``status`` object (kopf's own fields are left alone by the caller's patch).

    ``unschedulable`` is `scheduling.unschedulable_report` (None: every pod placed).
    """
    phase = derive_phase(
        view, activity, bootstrapped, restoring, unschedulable=unschedulable is not None
    )
    prev_conditions = list(previous.get("conditions") or [])
    ready = sum(1 for m in view.members.values() if m.ready)
    unhealthy = sorted(m.name for m in view.voters if not m.healthy)
    if view.leader is None:
        available = ("NoLeader", "no member reports a leader")
    elif not view.has_quorum:
        available = ("QuorumLost", f"healthy voters below majority: {', '.join(unhealthy)}")
    else:
        available = ("QuorumHealthy", f"leader {view.leader}, term {view.term}")
    if unschedulable is not None:
        degraded = (UNSCHEDULABLE, unschedulable)
    elif activity.blocked:
        degraded = ("Blocked", activity.blocked)
    elif phase == "Degraded" and available[0] == "QuorumHealthy":
        degraded = ("MemberUnhealthy", f"{', '.join(unhealthy)} unhealthy")
    elif phase == "Degraded":
        degraded = available
    else:
        degraded = ("AsExpected", "all voters healthy")
    conditions = [
        set_condition(
            prev_conditions,
            "Available",
            status=available[0] == "QuorumHealthy",
            reason=available[0],
            message=available[1],
            now=now,
        ),
        set_condition(
            prev_conditions,
            "Progressing",
            status=bool(activity.kind),
            reason=activity.kind or "Stable",
            message=activity.message or "nothing to do",
            now=now,
        ),
        set_condition(
            prev_conditions,
            "Degraded",
            status=phase == "Degraded" or unschedulable is not None,
            reason=degraded[0],
            message=degraded[1],
            now=now,
        ),
    ]
    conditions += [c for c in prev_conditions if c.get("type") == "BackupSucceeded"]
    status: dict[str, Any] = {
        "phase": phase,
        "message": unschedulable
        or activity.blocked
        or activity.message
        or (degraded[1] if phase == "Degraded" else conditions[0]["message"]),
        "replicas": len(view.voters),
        "readyReplicas": ready,
        "ready": f"{ready}/{desired_replicas}",
        "selector": selector,
        "leader": view.leader or "",
        "term": view.term,
        "commitIndex": view.commit_index,
        "members": [
            {
                "name": m.name,
                "id": m.id,
                "role": m.role,
                "healthy": m.healthy,
                "lag": m.lag if m.lag is not None else -1,
                "revision": m.revision,
            }
            for m in sorted(view.members.values(), key=lambda m: m.name)
        ],
        "conditions": conditions,
    }
    if generation is not None:
        status["observedGeneration"] = generation
    for key in ("lastBackup", "backup", "restore"):
        if key in previous:
            status[key] = previous[key]
    return status
