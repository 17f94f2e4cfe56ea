"""The two kinds of error the core reports (h11 style).

``RaftUsageError`` and its subclasses mean the caller asked for something the
core cannot do right now (not leader, transfer in progress, change pending);
they are raised from the public methods. Invalid messages from peers are never
raised: the core drops and counts them (``RawNode.dropped_messages``).
"""

from __future__ import annotations


class RaftUsageError(Exception):
    """The caller misused the API or asked at the wrong time."""


class NotLeaderError(RaftUsageError):
    """A leader-only request reached a non-leader; ``leader`` is who to ask ("" if unknown)."""

    def __init__(self, leader: str, term: int) -> None:
        self.leader = leader
        self.term = term
        who = f"node {leader!r}" if leader else "no known leader"
        super().__init__(f"not the leader (term {term}; {who})")


class TransferInProgressError(RaftUsageError):
    """Proposals are refused while leadership is being handed over."""


class ConfChangePendingError(RaftUsageError):
    """Only one membership change may be in flight at a time."""


class InvalidConfChangeError(RaftUsageError):
    """The change makes no sense for the current configuration."""


class InvalidTransferError(RaftUsageError):
    """Leadership can only be handed to another voter of the current configuration."""
