"""ReadIndex bookkeeping on the leader (Raft thesis §6.4).

Each request records the commit index at its start and is answered once a
quorum has acknowledged a heartbeat sent after it. Requests are keyed by a
leader-chosen heartbeat context, not the client's, so contexts from different
followers cannot collide. Acknowledging a request acknowledges all earlier ones.
"""

from __future__ import annotations

from typing import NamedTuple


class ReadRequest(NamedTuple):
    commit: int  # commit index when the request arrived (the read point)
    context: bytes  # the requester's context, echoed in the answer
    frm: str  # who asked (the leader itself for local reads)


class ReadOnly:
    def __init__(self) -> None:
        self._seq = 0
        self._pending: dict[bytes, tuple[ReadRequest, set[str]]] = {}
        self._queue: list[bytes] = []

    def add(self, request: ReadRequest, self_id: str) -> bytes:
        """Queue ``request``; returns the heartbeat context that confirms it."""
        self._seq += 1
        key = b"ri:%d" % self._seq
        self._pending[key] = (request, {self_id})
        self._queue.append(key)
        return key

    def ack(self, frm: str, key: bytes) -> set[str] | None:
        """Record that ``frm`` answered the heartbeat for ``key``; the acks so far."""
        entry = self._pending.get(key)
        if entry is None:
            return None
        entry[1].add(frm)
        return entry[1]

    def release(self, key: bytes) -> list[ReadRequest]:
        """Pop ``key`` and every request queued before it."""
        if key not in self._pending:
            return []
        n = self._queue.index(key) + 1
        keys, self._queue = self._queue[:n], self._queue[n:]
        return [self._pending.pop(k)[0] for k in keys]

    def last_key(self) -> bytes:
        return self._queue[-1] if self._queue else b""

    def pending_count(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        self._pending.clear()
        self._queue.clear()
