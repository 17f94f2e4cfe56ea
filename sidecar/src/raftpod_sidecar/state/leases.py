"""Leases: replicated TTL grants with bound keys, and the leader's expiry clock.

``LeaseTable`` is replicated state. A lease's id is the raft index of its
grant entry, so every node derives the same id with no counter to agree on.
Revoking a lease deletes its keys through the log like any other write.

Expiry is *not* decided at apply time (apply must not read a clock, and
replicas would disagree): the leader alone runs a ``LeaseClock`` over
monotonic seconds it passes in, and proposes ``lease_revoke`` for what
``expired(now)`` returns. Keepalives (forwarded to the leader by followers)
only move the leader's deadlines, so they cost no log entry. A new leader
cannot know the old leader's deadlines: on becoming leader it calls
``reset`` and every lease gets a full TTL from then (etcd does the same), so
a lease may outlive its TTL by up to one election, never expire early.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any


class LeaseTable:
    """Granted leases: TTL and the keys bound to each."""

    def __init__(self) -> None:
        self._ttl: dict[int, int] = {}
        self._keys: dict[int, set[str]] = {}

    def __len__(self) -> int:
        return len(self._ttl)

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._ttl

    def ttl(self, lease_id: int) -> int | None:
        return self._ttl.get(lease_id)

    def ttls(self) -> dict[int, int]:
        """Every lease's TTL by id: what ``LeaseClock.reset`` takes."""
        return dict(self._ttl)

    def keys(self, lease_id: int) -> list[str]:
        """Keys bound to the lease, sorted (an unknown lease has none)."""
        return sorted(self._keys.get(lease_id, ()))

    def grant(self, lease_id: int, ttl: int) -> None:
        self._ttl[lease_id] = ttl
        self._keys[lease_id] = set()

    def revoke(self, lease_id: int) -> list[str]:
        """Forget the lease; returns its keys, sorted, for the caller to delete."""
        del self._ttl[lease_id]
        return sorted(self._keys.pop(lease_id))

    def attach(self, lease_id: int, key: str) -> None:
        self._keys[lease_id].add(key)

    def detach(self, lease_id: int, key: str) -> None:
        self._keys[lease_id].discard(key)

    def to_data(self) -> list[list[int]]:
        """``[[id, ttl], ...]``; bound keys are rebuilt from the KV store on restore."""
        return [[lease_id, ttl] for lease_id, ttl in sorted(self._ttl.items())]

    def restore(self, data: list[Any], bound: Iterable[tuple[str, int]]) -> None:
        """Load ``to_data()`` output; ``bound`` is ``(key, lease)`` for every leased key."""
        self._ttl = {lease_id: ttl for lease_id, ttl in data}
        self._keys = {lease_id: set() for lease_id in self._ttl}
        for key, lease_id in bound:
            self._keys[lease_id].add(key)


class LeaseClock:
    """The leader's lease deadlines, in caller-supplied monotonic seconds.

    ``expired`` reports a lease once, then again every ``retry_seconds`` until
    the caller ``forget``s it (its revoke was applied), in case a revoke
    proposal was lost. A reported lease refuses keepalives.
    """

    def __init__(self, retry_seconds: float = 1.0) -> None:
        self.retry_seconds = retry_seconds
        self._ttl: dict[int, int] = {}
        self._deadline: dict[int, float] = {}
        self._expired: set[int] = set()
        self._heap: list[tuple[float, int]] = []  # may hold stale deadlines

    def reset(self, ttls: Mapping[int, int], now: float) -> None:
        """On becoming leader: track exactly ``ttls`` (id -> TTL), each due at ``now + ttl``."""
        self._ttl = dict(ttls)
        self._deadline = {lease_id: now + ttl for lease_id, ttl in self._ttl.items()}
        self._expired = set()
        self._heap = [(deadline, lease_id) for lease_id, deadline in self._deadline.items()]
        heapq.heapify(self._heap)

    def track(self, lease_id: int, ttl: int, now: float) -> None:
        """A grant was applied while leader: due at ``now + ttl``."""
        self._ttl[lease_id] = ttl
        self._expired.discard(lease_id)
        self._set_deadline(lease_id, now + ttl)

    def forget(self, lease_id: int) -> None:
        """The lease was revoked (applied): stop tracking it."""
        self._ttl.pop(lease_id, None)
        self._deadline.pop(lease_id, None)
        self._expired.discard(lease_id)

    def keepalive(self, lease_id: int, now: float) -> int | None:
        """Extend to ``now + ttl``; returns the TTL, or None if unknown or already expired."""
        ttl = self._ttl.get(lease_id)
        if ttl is None or lease_id in self._expired:
            return None
        self._set_deadline(lease_id, now + ttl)
        return ttl

    def remaining(self, lease_id: int, now: float) -> float | None:
        """Seconds left before expiry (0 once expired), None if unknown."""
        if lease_id not in self._ttl:
            return None
        if lease_id in self._expired:
            return 0.0
        return max(0.0, self._deadline[lease_id] - now)

    def expired(self, now: float) -> list[int]:
        """Leases past their deadline that need a revoke proposal, sorted by id."""
        heap, due = self._heap, []
        while heap and heap[0][0] <= now:
            deadline, lease_id = heapq.heappop(heap)
            if self._deadline.get(lease_id) != deadline:
                continue  # superseded by a keepalive, or forgotten
            due.append(lease_id)
            self._expired.add(lease_id)
        for lease_id in due:
            self._set_deadline(lease_id, now + self.retry_seconds)
        return sorted(due)

    def _set_deadline(self, lease_id: int, deadline: float) -> None:
        self._deadline[lease_id] = deadline
        heap = self._heap
        heapq.heappush(heap, (deadline, lease_id))
        if len(heap) > 4 * len(self._deadline) + 64:  # drop stale keepalive entries
            self._heap = [(d, i) for i, d in self._deadline.items()]
            heapq.heapify(self._heap)
