"""The scaling planner: learner -> caught up -> voter going up; leave Raft first going down."""

from __future__ import annotations

from raftcluster_env import C, cluster

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
from raftpod_operator.scaling import plan_scaling, pvc_name
from raftpod_operator.status import ClusterView, PodObservation


def plan(
    desired: int,
    sts: int,
    pods: list[PodObservation],
    view: ClusterView,
    pvcs: list[str] | None = None,
) -> Action:
    claims = pvcs if pvcs is not None else [f"data-{p.name}" for p in pods]
    return plan_scaling(C, desired=desired, sts_replicas=sts, pods=pods, view=view, pvcs=claims)


def test_at_size_is_done() -> None:
    pods, view = cluster(3)
    assert plan(3, 3, pods, view) == Done()


def test_scale_up_adds_the_next_ordinal_as_learner_first() -> None:
    pods, view = cluster(3)
    assert plan(5, 3, pods, view) == AddLearner("c-3", "c-3.c-peers.ns.svc:7000")


def test_scale_up_then_grows_the_statefulset() -> None:
    pods, view = cluster(3, learners={"c-3"}, missing={"c-3"})
    assert plan(5, 3, pods, view) == SetReplicas(4)


def test_scale_up_waits_for_the_learner_to_catch_up_then_promotes() -> None:
    pods, view = cluster(3, learners={"c-3"}, lag={"c-3": 5000})
    assert isinstance(plan(5, 4, pods, view), Wait)
    pods, view = cluster(3, learners={"c-3"}, lag={"c-3": 2})
    assert plan(5, 4, pods, view) == Promote("c-3")


def test_scale_up_blocked_without_a_healthy_majority() -> None:
    pods, view = cluster(3, not_ready={"c-1", "c-2"})
    assert isinstance(plan(5, 3, pods, view), Blocked)


def test_scale_down_removes_highest_ordinal_from_raft_before_shrinking() -> None:
    pods, view = cluster(5)
    assert plan(3, 5, pods, view) == RemoveMember("c-4")
    pods, view = cluster(4, extra_pods={"c-4"})
    assert plan(3, 5, pods, view) == RemoveMember("c-3")
    pods, view = cluster(3, extra_pods={"c-3", "c-4"})
    assert plan(3, 5, pods, view) == SetReplicas(3)


def test_scale_down_moves_leadership_off_the_victim_first() -> None:
    pods, view = cluster(5, leader="c-4", lag={"c-1": 9, "c-0": 3, "c-2": 1})
    assert plan(3, 5, pods, view) == TransferLeadership("c-4", "c-2")


def test_scale_down_never_below_a_healthy_majority() -> None:
    pods, view = cluster(5, not_ready={"c-0", "c-1"})
    action = plan(3, 5, pods, view)
    assert isinstance(action, Blocked)
    assert "c-4" in action.reason


def test_pvcs_of_removed_members_are_deleted_after_the_shrink() -> None:
    pods, view = cluster(3)
    claims = [pvc_name(C, i) for i in range(5)]
    assert plan(3, 3, pods, view, claims) == DeletePvc("data-c-3")
    # while the pod still exists (terminating), its claim stays
    pods, view = cluster(3, extra_pods={"c-3"}, deleting={"c-3"})
    assert plan(3, 3, pods, view, ["data-c-3"]) == Done()


def test_leftover_learner_above_desired_is_removed() -> None:
    pods, view = cluster(3, learners={"c-3"})
    assert plan(3, 4, pods, view) == RemoveMember("c-3")


def test_no_leader_waits() -> None:
    pods, view = cluster(3, leader=None)
    assert isinstance(plan(5, 3, pods, view), Wait)


def test_simulated_scale_up_and_down_reaches_the_target() -> None:
    """Drive a model cluster with the planner: 3 -> 5 -> 3, checking each step's precondition."""
    voters, learners, sts, claims = 3, set[str](), 3, {pvc_name(C, i) for i in range(3)}
    steps: list[str] = []
    for desired in (5, 3):
        for _ in range(40):
            names = {f"c-{i}" for i in range(voters)} | learners
            pods_up = {f"c-{i}" for i in range(sts)}
            pods, view = cluster(
                voters,
                learners=learners,
                missing=names - pods_up,
                extra_pods=sorted(pods_up - names),
            )
            action = plan(desired, sts, pods, view, sorted(claims))
            steps.append(type(action).__name__)
            match action:
                case Done():
                    break
                case AddLearner(pod, _):
                    learners.add(pod)
                case SetReplicas(n):
                    sts = n
                    claims |= {pvc_name(C, i) for i in range(n)}
                case Promote(pod):
                    assert pod in learners
                    learners.discard(pod)
                    voters += 1
                case RemoveMember(pod):
                    assert pod == f"c-{voters - 1}"
                    voters -= 1
                case DeletePvc(name):
                    claims.discard(name)
                case _:
                    raise AssertionError(action)
        else:
            raise AssertionError(f"no convergence to {desired}: {steps}")
        assert voters == desired and sts == desired
    assert claims == {pvc_name(C, i) for i in range(3)}
    assert steps[:4] == ["AddLearner", "SetReplicas", "Promote", "AddLearner"]
