"""Writes a follower hands to its leader inside the peer transport (PROP), as etcd does.

The follower answers its client when it applies the entry *itself*: the state
machine is deterministic, so its result is the leader's, and a read on this
node afterwards sees the write. This saves the HTTP round trip to the leader's
admin listener on both nodes (see ``forwarding`` for the HTTP path, still used
for admin calls, lease keep-alives and version-1 leaders).

Nothing confirms that a PROP arrived (a leader may lose its role or be mid
transfer and drop it), so every forwarded write carries a client session that
makes re-sending it exactly-once: the client's own (``X-Request-Id``) or one of
this node's *slots*. The runtime re-sends what is outstanding whenever the
leader changes and every ``RESEND_SECONDS``; the session table applies the
first copy that commits and answers later copies with its result.

A slot is the session ``fwd:<node>:<boot>:<n>`` with at most one write in flight,
its sequence number growing by one per write. The boot nonce keeps a restarted
node from reusing sequence numbers, and slots are created only as concurrency
needs them (at most ``MAX_SLOTS``), so the replicated session table holds a
handful per node.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any, NamedTuple

MAX_SLOTS = 1024
"""Concurrent forwarded writes without ``X-Request-Id`` per node; more wait for a slot."""

RESEND_SECONDS = 1.0
"""Outstanding forwarded writes are sent again this often (a PROP may have been dropped)."""


class SlotsExhaustedError(Exception):
    """No session slot freed up before the request's deadline."""


class Outstanding(NamedTuple):
    """One write waiting to be applied here: what to (re-)send and who waits for it."""

    data: bytes
    future: asyncio.Future[Any]


class ForwardedWrites:
    """Session slots and the writes this node forwarded that it has not applied yet."""

    def __init__(self, node_id: str, max_slots: int = MAX_SLOTS) -> None:
        self._prefix = f"fwd:{node_id}:{secrets.token_hex(4)}:"
        self._max_slots = max_slots
        self._free: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._created = 0
        self.outstanding: dict[tuple[str, int], Outstanding] = {}
        self.sent: dict[tuple[str, int], float] = {}  # when each was last handed on
        self.last_resend = time.monotonic()
        self.leader_changed_at = 0.0

    async def acquire(self, deadline: float) -> tuple[str, int]:
        """A slot's session for one write: ``(client, next seq)``."""
        if not self._free.empty():
            client, seq = self._free.get_nowait()  # no timeout to arm when a slot is free
            return client, seq + 1
        if self._created < self._max_slots:
            self._created += 1
            return f"{self._prefix}{self._created}", 1
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                client, seq = await self._free.get()
        except TimeoutError:
            raise SlotsExhaustedError(
                f"{self._max_slots} forwarded writes are already in flight on this node"
            ) from None
        return client, seq + 1

    def release(self, client: str, seq: int) -> None:
        """The slot's write has an outcome (or was given up): the slot takes the next one."""
        self._free.put_nowait((client, seq))

    def add(self, client: str, seq: int, data: bytes) -> tuple[asyncio.Future[Any], bool]:
        """Register a write; returns its future and whether this caller owns the entry.

        A second request with the same session while the first waits shares its future.
        """
        key = (client, seq)
        existing = self.outstanding.get(key)
        if existing is not None:
            return existing.future, False
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.outstanding[key] = Outstanding(data, future)
        return future, True

    def remove(self, client: str, seq: int) -> bool:
        """Forget a write; returns whether it was ever handed to a leader."""
        key = (client, seq)
        self.outstanding.pop(key, None)
        return self.sent.pop(key, None) is not None

    def applied(self, client: str, seq: int, outcome: object) -> None:
        """An entry with this session was applied here: answer whoever waits for it."""
        waiting = self.outstanding.get((client, seq))
        if waiting is not None and not waiting.future.done():
            waiting.future.set_result(outcome)
