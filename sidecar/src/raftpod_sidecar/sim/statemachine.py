"""The simulated application: an ordered list of applied commands plus client sessions.

It is as small as a state machine can be while still showing every way Raft
can hurt one: a command applied twice shows up twice in the list, a lost one is
missing, and the ``SessionTable`` (replicated, saved in snapshots) is what
turns a client's retried proposal into a single application and answers every
copy with the index where the first one took effect. Its snapshot is
its msgpack serialisation; the membership configuration travels beside it in
the snapshot metadata.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import msgpack

from ..raft.confchange import apply_change, decode_conf_change
from ..raft.errors import InvalidConfChangeError
from ..raft.messages import ConfState, Entry, EntryType, Snapshot
from ..raft.sessions import SessionTable
from .invariants import CommandKey


class StateMachine:
    """Commands in apply order, exactly-once by ``(client, seq)``."""

    def __init__(self, applied: int = 0, conf: ConfState | None = None) -> None:
        self.applied = applied
        self.conf = conf if conf is not None else ConfState()
        self.commands: list[tuple[str, int, bytes]] = []
        self.sessions = SessionTable()

    def apply(self, entry: Entry) -> CommandKey | None:
        """Apply one committed entry; the session key if it added a client command."""
        self.applied = entry.index
        if entry.type == EntryType.CONF_CHANGE:
            # the core validated it on append; an invalid change changes nothing
            with suppress(ValueError, InvalidConfChangeError):
                self.conf = apply_change(self.conf, decode_conf_change(entry.data))
            return None
        if not entry.client:
            if entry.data:
                self.commands.append(("", 0, entry.data))
            return None
        if self.sessions.lookup(entry.client, entry.seq) is not None:
            return None  # a retry of a command already applied: answer from the session
        self.commands.append((entry.client, entry.seq, entry.data))
        # the answer a client (or its retry) gets: the index where its command took effect
        self.sessions.record(entry.client, entry.seq, entry.index, entry.index)
        return (entry.client, entry.seq)

    def applied_at(self, client: str, seq: int) -> int:
        """The index where ``(client, seq)`` took effect, as the session answers; 0 if unknown."""
        hit = self.sessions.lookup(client, seq)
        if hit is None or hit.stale:
            return 0
        index: int = hit.result
        return index

    def command_keys(self) -> list[CommandKey]:
        return [(client, seq) for client, seq, _ in self.commands if client]

    def snapshot_data(self) -> bytes:
        data: bytes = msgpack.packb(
            [self.applied, [list(c) for c in self.commands], self.sessions.to_data()]
        )
        return data

    @classmethod
    def restore(cls, snapshot: Snapshot) -> StateMachine:
        """The state machine a snapshot describes (empty data: the bootstrap snapshot)."""
        sm = cls(snapshot.meta.index, snapshot.meta.conf)
        if snapshot.data:
            fields: list[Any] = msgpack.unpackb(snapshot.data)
            applied, commands, sessions = fields
            if applied != snapshot.meta.index:
                raise ValueError(f"snapshot data at {applied} under metadata {snapshot.meta.index}")
            sm.commands = [(c, s, bytes(d)) for c, s, d in commands]
            sm.sessions = SessionTable.from_data(sessions)
        return sm
