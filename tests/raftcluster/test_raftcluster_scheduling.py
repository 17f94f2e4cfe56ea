"""Pods no node can take: read from PodScheduled, reported in status, announced once."""

from __future__ import annotations

import dataclasses
from typing import Any

from raftcluster_env import NOW, cluster, minimal_spec

from raftpod_operator.actions import Wait
from raftpod_operator.scheduling import unschedulable_news, unschedulable_report
from raftpod_operator.status import PodObservation, activity_for, derive_status

ANTI_AFFINITY = (
    "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: "
    "0/3 nodes are available: 3 No preemption victims found for incoming pod.."
)
NO_CPU = "0/3 nodes are available: 3 Insufficient cpu."
REQUIRED = minimal_spec().placement
PREFERRED = minimal_spec(placement={"antiAffinity": "preferred"}).placement


def pending_pod(scheduled: dict[str, Any] | None) -> dict[str, Any]:
    conditions = [scheduled] if scheduled else []
    return {
        "metadata": {"name": "c-3", "labels": {"controller-revision-hash": "r1"}},
        "status": {"phase": "Pending", "conditions": conditions},
    }


def test_the_scheduler_message_is_read_from_pod_scheduled() -> None:
    stuck = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": ANTI_AFFINITY,
    }
    assert PodObservation.from_pod(pending_pod(stuck), None).unschedulable == ANTI_AFFINITY
    gated = {**stuck, "reason": "SchedulingGated", "message": "gated"}
    placed = {"type": "PodScheduled", "status": "True"}
    for condition in (gated, placed, None):
        assert PodObservation.from_pod(pending_pod(condition), None).unschedulable is None


def stuck(pods: list[PodObservation], messages: dict[str, str]) -> list[PodObservation]:
    return [dataclasses.replace(p, unschedulable=messages.get(p.name)) for p in pods]


def test_report_names_pods_with_their_scheduler_message_and_the_required_rule() -> None:
    pods, _ = cluster(3, extra_pods=["c-3", "c-4"], not_ready={"c-3", "c-4"})
    pods = stuck(pods, {"c-3": ANTI_AFFINITY, "c-4": ANTI_AFFINITY})
    report = unschedulable_report(pods, REQUIRED)
    assert report is not None
    assert report.startswith("c-3, c-4 cannot be scheduled: 0/3 nodes are available: 3 node(s)")
    assert "didn't match pod anti-affinity rules" in report
    assert "antiAffinity is required" in report and "kubernetes.io/hostname" in report
    assert "antiAffinity: preferred" in report


def test_preferred_anti_affinity_or_another_cause_gets_no_anti_affinity_hint() -> None:
    pods, _ = cluster(3, extra_pods=["c-3"], not_ready={"c-3"})
    assert unschedulable_report(stuck(pods, {"c-3": ANTI_AFFINITY}), PREFERRED) == (
        f"c-3 cannot be scheduled: {ANTI_AFFINITY.rstrip('.')}"
    )
    assert unschedulable_report(stuck(pods, {"c-3": NO_CPU}), REQUIRED) == (
        "c-3 cannot be scheduled: 0/3 nodes are available: 3 Insufficient cpu"
    )


def test_different_causes_are_listed_apart_and_placed_pods_give_no_report() -> None:
    pods, _ = cluster(3, extra_pods=["c-3", "c-4"])
    report = unschedulable_report(stuck(pods, {"c-3": NO_CPU, "c-4": ANTI_AFFINITY}), PREFERRED)
    assert report is not None
    assert report.index("c-3 cannot be scheduled: 0/3") < report.index("; c-4 cannot be scheduled")
    assert unschedulable_report(pods, REQUIRED) is None


def scale_up_status(report: str | None, previous: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """Scaling 3 -> 4: learner c-3 in the configuration, its pod not running."""
    _, view = cluster(3, learners={"c-3"}, not_ready={"c-3"})
    waiting = activity_for("Scaling", Wait("waiting for learner c-3 to become ready"))
    args: dict[str, Any] = {
        "view": view,
        "activity": waiting,
        "desired_replicas": 4,
        "selector": "app=c",
        "bootstrapped": True,
        "restoring": False,
        "unschedulable": report,
        "generation": 2,
        "previous": previous,
        "now": NOW,
    }
    return derive_status(**{**args, **kw})


def degraded(st: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == "Degraded")


def test_status_says_unschedulable_in_phase_condition_and_message() -> None:
    report = "c-3 cannot be scheduled: no node"
    st = scale_up_status(report, {})
    assert st["phase"] == "Degraded" and st["message"] == report
    assert (degraded(st)["status"], degraded(st)["reason"], degraded(st)["message"]) == (
        "True",
        "Unschedulable",
        report,
    )
    assert next(c for c in st["conditions"] if c["type"] == "Progressing")["reason"] == "Scaling"
    # while bootstrapping the phase stays, but the condition still says why
    early = scale_up_status(report, {}, bootstrapped=False)
    assert early["phase"] == "Bootstrapping"
    assert (degraded(early)["status"], degraded(early)["reason"]) == ("True", "Unschedulable")
    placed = scale_up_status(None, st)
    assert placed["phase"] == "Scaling"
    assert (degraded(placed)["status"], degraded(placed)["reason"]) == ("False", "AsExpected")


def test_news_only_when_the_report_is_new_or_changed() -> None:
    first = "c-3 cannot be scheduled: no node"
    assert unschedulable_news({}, first) == first
    written = scale_up_status(first, {})
    assert unschedulable_news(written, first) is None
    second = "c-3, c-4 cannot be scheduled: no node"
    assert unschedulable_news(written, second) == second
    assert unschedulable_news(written, None) is None
    cleared = scale_up_status(None, written)
    assert unschedulable_news(cleared, first) == first
