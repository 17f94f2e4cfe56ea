"""Applies commands to a StateMachine as consecutive log entries, as the node would."""

from __future__ import annotations

from dataclasses import dataclass, field

from raftpod_sidecar.raft.messages import Entry
from raftpod_sidecar.state.commands import Command, encode
from raftpod_sidecar.state.machine import Applied, StateMachine


@dataclass
class Feeder:
    sm: StateMachine = field(default_factory=StateMachine)
    term: int = 1

    def raw(self, data: bytes, client: str = "", seq: int = 0) -> Applied:
        entry = Entry(self.term, self.sm.applied_index + 1, data=data, client=client, seq=seq)
        return self.sm.apply(entry)

    def __call__(self, cmd: Command, client: str = "", seq: int = 0) -> Applied:
        return self.raw(encode(cmd), client, seq)
