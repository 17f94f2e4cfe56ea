"""Majority arithmetic: commit index and election outcome over a set of voters.

Only majority quorums exist here because membership changes follow the
single-server rule (see ``confchange``); there is no joint configuration.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from enum import IntEnum


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority(n: int) -> int:
    """Smallest number of voters out of ``n`` that forms a quorum."""
    return n // 2 + 1


def committed_index(voters: Sequence[str], match: Mapping[str, int]) -> int:
    """The largest index acknowledged by a majority of ``voters`` (0 if there are none)."""
    if not voters:
        return 0
    acked = sorted((match.get(v, 0) for v in voters), reverse=True)
    return acked[majority(len(acked)) - 1]


def vote_result(voters: Sequence[str], votes: Mapping[str, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer grant."""
    granted = sum(1 for v in voters if votes.get(v) is True)
    missing = sum(1 for v in voters if v not in votes)
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if granted + missing >= need:
        return VoteResult.PENDING
    return VoteResult.LOST


def has_quorum(voters: Sequence[str], ids: Collection[str]) -> bool:
    """True when ``ids`` contains a majority of ``voters``."""
    return bool(voters) and sum(1 for v in voters if v in ids) >= majority(len(voters))
