"""The leader's view of every member: progress, votes, liveness, and quorum questions.

Ids are always visited in sorted order so that message order is deterministic.
"""

from __future__ import annotations

from .messages import ConfState
from .progress import Progress
from .quorum import VoteResult, committed_index, has_quorum, vote_result


class ProgressTracker:
    def __init__(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self.conf = ConfState()
        self.voters: tuple[str, ...] = ()
        self.progress: dict[str, Progress] = {}
        self.votes: dict[str, bool] = {}
        self._match: dict[str, int] = {}

    def set_conf(self, conf: ConfState, last_index: int) -> None:
        """Switch to ``conf``: new members start probing at ``last_index + 1``."""
        self.conf = conf
        self.voters = conf.voters()
        progress: dict[str, Progress] = {}
        for member in conf.members:
            pr = self.progress.get(member.id)
            if pr is None:
                pr = Progress(last_index + 1, self.max_inflight, learner=not member.voter)
            pr.learner = not member.voter
            progress[member.id] = pr
        self.progress = progress

    def reset(self, last_index: int) -> None:
        """Forget all progress (new term): everyone probes from ``last_index + 1``."""
        self.progress = {
            m.id: Progress(last_index + 1, self.max_inflight, learner=not m.voter)
            for m in self.conf.members
        }
        self.votes = {}

    def committed(self) -> int:
        match = self._match
        for v in self.voters:
            match[v] = self.progress[v].match
        return committed_index(self.voters, match)

    def record_vote(self, node_id: str, granted: bool) -> None:
        self.votes.setdefault(node_id, granted)

    def tally(self) -> VoteResult:
        return vote_result(self.voters, self.votes)

    def quorum_active(self, self_id: str) -> bool:
        """Did a majority respond since the last check? Clears the flags for the next round."""
        active = [i for i, pr in self.progress.items() if pr.recent_active or i == self_id]
        for i, pr in self.progress.items():
            pr.recent_active = i == self_id
        return has_quorum(self.voters, active)

    def quorum_heard_since(self, tick: int, self_id: str) -> bool:
        heard = [i for i, pr in self.progress.items() if i == self_id or pr.last_heard >= tick]
        return has_quorum(self.voters, heard)

    def peers(self, self_id: str) -> list[str]:
        """Every member but ``self_id``, sorted."""
        return [i for i in sorted(self.progress) if i != self_id]
