"""Client sessions: exactly-once application of proposals by ``(client, seq)``.

A client that retries a write after a timeout may get it committed twice; the
Raft thesis (§6.3) fixes this in the state machine. Every entry proposed with a
non-empty ``client`` carries a sequence number; the applier asks ``lookup``
first and, on a hit, answers with the cached result of the original instead of
applying again, then calls ``record`` for every new application.

One result is kept per client, the one for its highest ``seq``: a client has
one request in flight at a time, so a lower ``seq`` is a retry whose answer the
client already saw (``Hit.stale``; the caller must not apply it again).

The table is replicated state (it changes only through applied entries and is
part of snapshots), so it is deterministic: bounded to ``max_sessions``, and
evicting the session least recently *recorded* by raft index, never by wall
time or lookups. Results are opaque msgpack-able values.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple


class Hit(NamedTuple):
    """A duplicate: ``result`` of the original, or ``stale`` if that result is gone."""

    result: Any
    stale: bool = False


class _Session(NamedTuple):
    seq: int
    result: Any
    index: int  # type: ignore[assignment]


class SessionTable:
    """Last ``(seq, result)`` per client, least recently recorded evicted first."""

    def __init__(self, max_sessions: int = 10_000) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        self.max_sessions = max_sessions
        # Ordered by the raft index of the last record: records come in index
        # order, so moving a session to the end keeps the dict sorted.
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def lookup(self, client: str, seq: int) -> Hit | None:
        """The cached outcome if ``(client, seq)`` was already applied, else None."""
        session = self._sessions.get(client)
        if session is None or seq > session.seq:
            return None
        if seq == session.seq:
            return Hit(session.result)
        return Hit(None, stale=True)

    def record(self, client: str, seq: int, result: Any, index: int) -> None:
        """Remember ``result`` as the outcome of ``(client, seq)`` applied at ``index``."""
        sessions = self._sessions
        if client in sessions:
            sessions.move_to_end(client)
        sessions[client] = _Session(seq, result, index)
        while len(sessions) > self.max_sessions:
            sessions.popitem(last=False)

    def to_data(self) -> list[list[Any]]:
        """Plain msgpack-able form: ``[[client, seq, result, index], ...]`` oldest first."""
        return [[client, s.seq, s.result, s.index] for client, s in self._sessions.items()]

    @classmethod
    def from_data(cls, data: list[list[Any]], max_sessions: int = 10_000) -> SessionTable:
        """Rebuild from ``to_data()`` output (trimmed to ``max_sessions``)."""
        table = cls(max_sessions)
        for client, seq, result, index in data:
            table.record(client, seq, result, index)
        return table
