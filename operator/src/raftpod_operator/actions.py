"""The one next step a planner hands the handler: plain values, easy to compare in tests.

Planners (`upgrade.py`, `scaling.py`) return exactly one action per round and
keep no memory between rounds; the handler applies it and the next round
re-plans from what the cluster then looks like.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Done:
    """Nothing left to do."""


@dataclass(frozen=True)
class Paused:
    """The user froze the rollout (``upgrade.paused``)."""


@dataclass(frozen=True)
class Wait:
    """Something is in progress; look again later."""

    reason: str


@dataclass(frozen=True)
class Blocked:
    """Going on would risk the majority: stop and report Degraded."""

    reason: str


@dataclass(frozen=True)
class TransferLeadership:
    """Ask ``source`` (the leader) to hand leadership to ``target``."""

    source: str
    target: str


@dataclass(frozen=True)
class DeletePod:
    """Delete ``pod`` so the StatefulSet recreates it at the new revision."""

    pod: str


@dataclass(frozen=True)
class AddLearner:
    """Add ``pod`` to the Raft configuration as a non-voter at ``address``."""

    pod: str
    address: str


@dataclass(frozen=True)
class Promote:
    """Make the caught-up learner ``pod`` a voter."""

    pod: str


@dataclass(frozen=True)
class RemoveMember:
    """Remove ``pod`` from the Raft configuration."""

    pod: str


@dataclass(frozen=True)
class SetReplicas:
    """Resize the StatefulSet."""

    replicas: int


@dataclass(frozen=True)
class DeletePvc:
    """Delete the volume claim of a member that is gone for good."""

    name: str


Action = (
    Done
    | Paused
    | Wait
    | Blocked
    | TransferLeadership
    | DeletePod
    | AddLearner
    | Promote
    | RemoveMember
    | SetReplicas
    | DeletePvc
)


def describe(action: Action) -> str:
    """One line for events, status messages and logs."""
    match action:
        case Wait(reason) | Blocked(reason):
            return reason
        case TransferLeadership(source, target):
            return f"moving leadership from {source} to {target}"
        case DeletePod(pod):
            return f"restarting {pod} at the new revision"
        case AddLearner(pod, address):
            return f"adding {pod} ({address}) as a learner"
        case Promote(pod):
            return f"promoting {pod} to voter"
        case RemoveMember(pod):
            return f"removing {pod} from the Raft configuration"
        case SetReplicas(replicas):
            return f"resizing the StatefulSet to {replicas}"
        case DeletePvc(name):
            return f"deleting volume claim {name} of a removed member"
        case Paused():
            return "rollout paused"
        case _:
            return "nothing to do"
