"""Why members stay Pending, in the scheduler's own words, for status and events.

A required anti-affinity (the default) needs one topology domain (node) per
member: with more replicas than schedulable nodes the extra pods stay Pending
and only their ``PodScheduled`` condition says why. `unschedulable_report`
turns that into the ``Degraded`` condition's message (reason ``Unschedulable``);
`unschedulable_news` says when it is worth a Warning event (once per change,
not every round). Both pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from raftpod_operator.spec import PlacementSpec
from raftpod_operator.status import UNSCHEDULABLE, PodObservation


def unschedulable_report(pods: Sequence[PodObservation], placement: PlacementSpec) -> str | None:
    """One line naming every pod no node can take and why; None when there is none.

    The hint about ``placement.antiAffinity`` is added only when it is ``required``
    and the scheduler names anti-affinity: with ``preferred`` the scheduler places
    members side by side instead, so the cause must be something else.
    """
    names_by_message: dict[str, list[str]] = {}
    for pod in sorted(pods, key=lambda p: p.name):
        if pod.unschedulable is not None:
            message = pod.unschedulable.strip().rstrip(".")
            names_by_message.setdefault(message, []).append(pod.name)
    if not names_by_message:
        return None
    report = "; ".join(
        f"{', '.join(names)} cannot be scheduled: {message}"
        for message, names in names_by_message.items()
    )
    if placement.anti_affinity == "required" and any(
        "anti-affinity" in message for message in names_by_message
    ):
        report += (
            f". spec.placement.antiAffinity is required, so every member needs its own "
            f"{placement.topology_key}: add schedulable nodes, lower spec.replicas, or set "
            "spec.placement.antiAffinity: preferred"
        )
    return report


def unschedulable_news(previous: Mapping[str, Any], report: str | None) -> str | None:
    """``report`` unless the previous status's Degraded condition already said exactly it."""
    if report is None:
        return None
    for c in previous.get("conditions") or []:
        if c.get("type") == "Degraded" and (c.get("reason"), c.get("message")) == (
            UNSCHEDULABLE,
            report,
        ):
            return None
    return report
