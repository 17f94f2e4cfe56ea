"""The rolling-upgrade planner: followers first, leader last after a transfer, never past a risk."""

from __future__ import annotations

import dataclasses
import datetime as dt

from raftcluster_env import MAX_LAG, NOW, cluster

from raftpod_operator.actions import (
    Action,
    Blocked,
    DeletePod,
    Done,
    Paused,
    TransferLeadership,
    Wait,
)
from raftpod_operator.status import (
    ClusterView,
    PodObservation,
    activity_for,
    derive_status,
    observe,
    was_upgrading,
)
from raftpod_operator.upgrade import READY_TIMEOUT, plan_upgrade


def plan(pods: list[PodObservation], view: ClusterView, *, was_upgrading: bool = True) -> Action:
    """The planner mid-rollout (the last status said Upgrading) unless told otherwise."""
    return plan_upgrade(pods, view, "r2", paused=False, was_upgrading=was_upgrading, now=NOW)


def test_up_to_date_cluster_is_done() -> None:
    pods, view = cluster(default_revision="r2")
    assert plan(pods, view) == Done()


def test_followers_first_highest_ordinal_first() -> None:
    pods, view = cluster(5)
    assert plan(pods, view) == DeletePod("c-4")


def test_leader_last_and_transfer_goes_to_most_caught_up_follower() -> None:
    pods, view = cluster(
        3, revision={"c-1": "r2", "c-2": "r2"}, default_revision="r1", lag={"c-1": 7, "c-2": 3}
    )
    assert plan(pods, view) == TransferLeadership("c-0", "c-2")


def test_leader_is_deleted_once_it_no_longer_leads() -> None:
    pods, view = cluster(3, leader="c-2", revision={"c-1": "r2", "c-2": "r2"})
    assert plan(pods, view) == DeletePod("c-0")


def test_paused_takes_no_action() -> None:
    pods, view = cluster(3)
    assert plan_upgrade(pods, view, "r2", paused=True, was_upgrading=True, now=NOW) == Paused()


def test_blocked_when_another_voter_is_unhealthy() -> None:
    pods, view = cluster(3, not_ready={"c-1"}, revision={"c-1": "r1"})
    # c-1 itself is outdated and the only unhealthy voter: replacing it is allowed
    assert plan(pods, view) == DeletePod("c-1")
    pods, view = cluster(5, not_ready={"c-1", "c-2"})
    action = plan(pods, view)
    assert isinstance(action, Blocked)
    assert "c-1, c-2" in action.reason


def test_blocked_when_a_voter_lags_beyond_max_lag() -> None:
    pods, view = cluster(3, lag={"c-1": MAX_LAG + 1})
    # only c-1 qualifies (the others would leave the lagging c-1 as a remaining voter)
    assert plan(pods, view) == DeletePod("c-1")
    pods, view = cluster(5, lag={"c-1": MAX_LAG + 1, "c-3": MAX_LAG + 5})
    assert isinstance(plan(pods, view), Blocked)


def test_waits_for_a_restarted_pod_to_catch_up() -> None:
    pods, view = cluster(3, revision={"c-2": "r2"}, not_ready={"c-2"}, created={"c-2": NOW})
    action = plan(pods, view)
    assert action == Wait("waiting for c-2 to become ready and caught up")


def test_waits_while_a_deleted_pod_is_away() -> None:
    pods, view = cluster(3, missing={"c-2"})
    assert isinstance(plan(pods, view), Wait)
    pods, view = cluster(3, deleting={"c-2"})
    assert isinstance(plan(pods, view), Wait)


def test_the_last_restarted_pod_is_waited_for_only_during_a_rollout() -> None:
    # every pod runs r2 and c-1 is not ready: the rollout's last restart, or a member down
    pods, view = cluster(3, default_revision="r2", not_ready={"c-1"}, created={"c-1": NOW})
    assert plan(pods, view, was_upgrading=True) == Wait(
        "waiting for c-1 to become ready and caught up"
    )
    assert plan(pods, view, was_upgrading=False) == Done()
    pods, view = cluster(3, default_revision="r2", missing={"c-1"})
    assert isinstance(plan(pods, view, was_upgrading=True), Wait)
    assert plan(pods, view, was_upgrading=False) == Done()
    pods, view = cluster(3, default_revision="r2", deleting={"c-1"})
    assert isinstance(plan(pods, view, was_upgrading=True), Wait)
    assert plan(pods, view, was_upgrading=False) == Done()


def test_an_outdated_pod_is_a_rollout_whatever_the_last_status_said() -> None:
    pods, view = cluster(3, revision={"c-2": "r2"})
    assert plan(pods, view, was_upgrading=False) == DeletePod("c-1")


def test_restarted_pod_not_ready_after_timeout_blocks() -> None:
    old = NOW - READY_TIMEOUT - dt.timedelta(seconds=1)
    pods, view = cluster(3, revision={"c-2": "r2"}, not_ready={"c-2"}, created={"c-2": old})
    action = plan(pods, view)
    assert isinstance(action, Blocked)
    assert "c-2" in action.reason


def test_no_leader_blocks() -> None:
    pods, view = cluster(3, leader=None)
    assert isinstance(plan(pods, view), Blocked)


def test_single_member_is_restarted_without_transfer() -> None:
    pods, view = cluster(1)
    assert plan(pods, view) == DeletePod("c-0")


def test_same_observation_gives_the_same_plan_after_an_operator_restart() -> None:
    pods, view = cluster(5, revision={"c-4": "r2"}, lag={"c-1": 4})
    first = plan(pods, view)
    # a "restarted operator" rebuilds everything from the same observed objects
    rebuilt = [dataclasses.replace(p) for p in pods]
    assert plan(rebuilt, observe(rebuilt, MAX_LAG)) == first == DeletePod("c-3")


def test_simulated_rollout_order_and_safety() -> None:
    """Apply each step to a model cluster until Done: the whole order, and every precondition."""
    n = 5
    revision = {f"c-{i}": "r1" for i in range(n)}
    leader = "c-1"
    restarting: set[str] = set()  # deleted, back at the new revision, not ready yet
    deleted: list[str] = []
    transfers: list[tuple[str, str]] = []
    status: dict[str, object] = {}  # what the previous round wrote, as the handler keeps it
    for _ in range(50):
        fresh = dict.fromkeys(restarting, NOW)
        pods, view = cluster(
            n, leader=leader, revision=revision, not_ready=restarting, created=fresh
        )
        action = plan(pods, view, was_upgrading=was_upgrading(status))
        status = derive_status(
            view=view,
            activity=activity_for("Upgrading", action),
            desired_replicas=n,
            selector="app=c",
            bootstrapped=True,
            restoring=False,
            unschedulable=None,
            generation=1,
            previous=status,
            now=NOW,
        )
        restarting.clear()  # a restarted pod becomes ready by the next round
        if action == Done():
            assert status["phase"] == "Running"
            break
        assert status["phase"] == "Upgrading", status
        if isinstance(action, DeletePod):
            others = [m for m in view.voters if m.name != action.pod]
            assert all(m.healthy for m in others), "deleted while another voter was unhealthy"
            assert action.pod != view.leader, "deleted the leader without a transfer"
            deleted.append(action.pod)
            revision[action.pod] = "r2"
            restarting.add(action.pod)
        elif isinstance(action, TransferLeadership):
            transfers.append((action.source, action.target))
            leader = action.target
        else:
            assert isinstance(action, Wait), action
    else:
        raise AssertionError("rollout did not finish in 50 rounds")
    assert deleted == ["c-4", "c-3", "c-2", "c-0", "c-1"]
    assert was_upgrading(status) is False
    assert transfers == [("c-1", "c-0")]
    assert set(revision.values()) == {"r2"}
