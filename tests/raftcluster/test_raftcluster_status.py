"""Status derivation: sidecar views -> phase, leader, members, conditions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from raftcluster_env import MAX_LAG, NOW, cluster

from raftpod_operator.actions import Blocked, DeletePod, Done, Paused
from raftpod_operator.crd import status_schema
from raftpod_operator.status import (
    Activity,
    PodObservation,
    activity_for,
    derive_status,
    observe,
    parse_admin_status,
    was_upgrading,
)
from raftpod_operator.upgrade import plan_upgrade

LEADER_STATUS = {
    "id": "c-0",
    "role": "leader",
    "term": 7,
    "leader": "c-0",
    "commit_index": 120,
    "applied_index": 120,
    "last_index": 121,
    "members": [
        {"id": "c-0", "address": "c-0.c-peers.ns.svc:7000", "voter": True, "match_index": 121},
        {"id": "c-1", "address": "c-1.c-peers.ns.svc:7000", "voter": True, "match_index": 120},
        {"id": "c-2", "address": "c-2.c-peers.ns.svc:7000", "voter": False, "lag": 40},
    ],
}


IDLE = Activity()


def status(view: Any, activity: Activity = IDLE, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "view": view,
        "activity": activity,
        "desired_replicas": 3,
        "selector": "app=x",
        "bootstrapped": True,
        "restoring": False,
        "unschedulable": None,
        "generation": 4,
        "previous": {},
        "now": NOW,
    }
    args.update(kw)
    return derive_status(**args)


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == type_)


def test_parse_admin_status() -> None:
    node = parse_admin_status(LEADER_STATUS)
    assert (node.id, node.role, node.term, node.leader) == ("c-0", "leader", 7, "c-0")
    assert [m.voter for m in node.members] == [True, True, False]
    assert node.members[2].lag == 40


@pytest.mark.parametrize(
    "bad", [None, [], {"role": "leader"}, {"id": "x", "term": "7"}, {"id": "x", "members": [1]}]
)
def test_parse_admin_status_rejects_bad_shapes(bad: Any) -> None:
    with pytest.raises(ValueError, match="/admin/status"):
        parse_admin_status(bad)


def test_members_lag_and_roles_from_the_leaders_view() -> None:
    pods = [
        PodObservation("c-0", True, "r1", view=parse_admin_status(LEADER_STATUS)),
        PodObservation(
            "c-1",
            True,
            "r1",
            view=parse_admin_status({**LEADER_STATUS, "id": "c-1", "role": "follower"}),
        ),
        PodObservation("c-2", True, "r2", view=None),
    ]
    view = observe(pods, MAX_LAG)
    assert view.leader == "c-0"
    assert view.term == 7
    roles = {m.name: (m.role, m.lag, m.healthy) for m in view.members.values()}
    assert roles == {
        "c-0": ("leader", 0, True),
        "c-1": ("follower", 1, True),
        "c-2": ("learner", 40, False),  # unreachable
    }


def test_running_cluster_status() -> None:
    _, view = cluster(3, term=9)
    st = status(view)
    assert st["phase"] == "Running"
    assert (st["leader"], st["term"], st["commitIndex"]) == ("c-0", 9, 100)
    assert (st["readyReplicas"], st["ready"], st["replicas"]) == (3, "3/3", 3)
    assert st["observedGeneration"] == 4
    assert condition(st, "Available")["status"] == "True"
    assert condition(st, "Degraded")["status"] == "False"
    assert [m["role"] for m in st["members"]] == ["leader", "follower", "follower"]


def test_one_unhealthy_voter_is_degraded_but_available() -> None:
    _, view = cluster(3, not_ready={"c-2"})
    st = status(view)
    assert st["phase"] == "Degraded"
    assert condition(st, "Available")["status"] == "True"
    assert "c-2" in condition(st, "Degraded")["message"]


def test_lost_quorum_is_not_available() -> None:
    _, view = cluster(3, not_ready={"c-1", "c-2"})
    st = status(view)
    assert st["phase"] == "Degraded"
    assert condition(st, "Available")["reason"] == "QuorumLost"


def test_bootstrapping_and_restoring_and_pending() -> None:
    _, view = cluster(3, leader=None)
    assert status(view, bootstrapped=False)["phase"] == "Bootstrapping"
    assert status(view, bootstrapped=False, restoring=True)["phase"] == "Restoring"
    assert status(observe([], MAX_LAG), bootstrapped=False)["phase"] == "Pending"


def test_activity_sets_phase_and_progressing() -> None:
    _, view = cluster(3, revision={"c-2": "r2"})
    st = status(view, activity_for("Upgrading", DeletePod("c-1")))
    assert st["phase"] == "Upgrading"
    assert condition(st, "Progressing")["status"] == "True"
    assert "c-1" in condition(st, "Progressing")["message"]
    blocked = status(view, activity_for("Upgrading", Blocked("c-1 lagging")))
    assert blocked["phase"] == "Degraded"
    assert condition(blocked, "Degraded")["reason"] == "Blocked"
    assert activity_for("Upgrading", Done()) == Activity()
    assert activity_for("Upgrading", Paused()).kind is None


def test_last_transition_time_kept_while_status_unchanged() -> None:
    _, view = cluster(3)
    first = status(view)
    later = NOW + dt.timedelta(minutes=5)
    second = status(view, previous=first, now=later)
    assert condition(second, "Available") == condition(first, "Available")
    _, broken = cluster(3, not_ready={"c-1", "c-2"})
    third = status(broken, previous=second, now=later)
    assert condition(third, "Available")["lastTransitionTime"] == "2026-11-26T12:05:00Z"


def test_backup_fields_carried_over() -> None:
    _, view = cluster(3)
    previous = {
        "lastBackup": {"time": "2026-11-26T06:00:00Z", "url": "s3://b/k", "index": 5},
        "conditions": [
            {
                "type": "BackupSucceeded",
                "status": "True",
                "reason": "Uploaded",
                "message": "",
                "lastTransitionTime": "2026-11-26T06:00:00Z",
            }
        ],
    }
    st = status(view, previous=previous)
    assert st["lastBackup"]["url"] == "s3://b/k"
    assert condition(st, "BackupSucceeded")["reason"] == "Uploaded"


def test_every_status_key_is_in_the_crd_status_schema() -> None:
    _, view = cluster(3)
    st = status(view, previous={"lastBackup": {"time": "t"}})
    schema = status_schema()["properties"]
    assert set(st) <= set(schema)
    assert set(st["members"][0]) <= set(schema["members"]["items"]["properties"])
    assert set(st["conditions"][0]) <= set(schema["conditions"]["items"]["properties"])
    assert st["phase"] in schema["phase"]["enum"]


def upgrade_round(
    pods: list[PodObservation], view: Any, previous: dict[str, Any]
) -> dict[str, Any]:
    """The timer's upgrade path for a cluster at its size: plan towards r2, then status."""
    action = plan_upgrade(
        pods, view, "r2", paused=False, was_upgrading=was_upgrading(previous), now=NOW
    )
    return status(view, activity_for("Upgrading", action), previous=previous)


def test_a_pod_restarting_during_a_rollout_is_upgrading() -> None:
    running = status(cluster(3)[1])
    pods, view = cluster(3, revision={"c-2": "r2"}, not_ready={"c-2"}, created={"c-2": NOW})
    mid = upgrade_round(pods, view, running)
    assert mid["phase"] == "Upgrading"
    assert (condition(mid, "Progressing")["status"], condition(mid, "Degraded")["status"]) == (
        "True",
        "False",
    )
    assert "c-2" in mid["message"]
    # the rollout's last restart: every pod at r2 now, c-0 (the old leader) coming back
    pods, view = cluster(
        3, leader="c-1", default_revision="r2", not_ready={"c-0"}, created={"c-0": NOW}
    )
    last = upgrade_round(pods, view, mid)
    assert last["phase"] == "Upgrading"
    assert condition(last, "Progressing")["reason"] == "Upgrading"


def test_a_member_down_outside_a_rollout_is_degraded_not_upgrading() -> None:
    running = status(cluster(3, default_revision="r2")[1])
    for down in ({"not_ready": {"c-2"}}, {"missing": {"c-2"}}, {"deleting": {"c-2"}}):
        pods, view = cluster(3, default_revision="r2", **down)  # type: ignore[arg-type]
        st = upgrade_round(pods, view, running)
        assert st["phase"] == "Degraded", down
        assert condition(st, "Progressing")["status"] == "False"
        degraded = condition(st, "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "MemberUnhealthy")
        assert "c-2" in degraded["message"] and "c-2" in st["message"]
        assert condition(st, "Available")["status"] == "True"


def test_all_ready_without_a_rollout_is_running() -> None:
    pods, view = cluster(3, default_revision="r2")
    st = upgrade_round(pods, view, status(view))
    assert st["phase"] == "Running"
    assert condition(st, "Available")["status"] == "True"
    assert condition(st, "Progressing")["status"] == "False"
    assert condition(st, "Degraded")["reason"] == "AsExpected"
    assert not was_upgrading(st)
