"""The leader's lease deadlines: keepalives move them, expiry proposes revokes.

Apply never reads a clock, so expiry is the leader's job (see
``state.leases``): every ``CHECK_SECONDS`` the leader syncs its
``LeaseClock`` with the replicated lease table (a new leader gives every lease
a full TTL from the moment it took over), then proposes ``lease_revoke`` for
each expired lease. The revoke deletes the lease's keys through the log on
every node. Followers keep no deadlines; their keepalives are forwarded.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .logs import event
from .node import NodeError, RaftNode
from .raft.errors import RaftUsageError
from .raft.messages import Role
from .state import commands
from .state.leases import LeaseClock
from .state.machine import StateMachine

CHECK_SECONDS = 0.1


class LeaseExpiry:
    """Runs on every node; acts only while this node leads."""

    def __init__(self, node: RaftNode, machine: StateMachine, logger: logging.Logger) -> None:
        self.node = node
        self.machine = machine
        self.log = logger
        self.clock = LeaseClock()
        self._leading_term = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lease-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def keepalive(self, lease_id: int) -> int | None:
        """Extend a lease on the leader; None if it is unknown or already expired."""
        if lease_id not in self.machine.leases:
            return None
        self._sync(time.monotonic())
        return self.clock.keepalive(lease_id, time.monotonic())

    def _sync(self, now: float) -> None:
        """Match the clock to the replicated table (new grants, a new term)."""
        node = self.node
        ttls = self.machine.leases.ttls()
        if self._leading_term != node.term:
            self._leading_term = node.term
            self.clock.reset(ttls, now)
            return
        for lease_id, ttl in ttls.items():
            if self.clock.remaining(lease_id, now) is None:
                self.clock.track(lease_id, ttl, now)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            if self.node.role != Role.LEADER:
                self._leading_term = 0
                continue
            now = time.monotonic()
            self._sync(now)
            expired = []
            for lease_id in self.clock.expired(now):
                if lease_id in self.machine.leases:
                    expired.append(lease_id)
                else:
                    self.clock.forget(lease_id)
            if expired:
                await asyncio.gather(*(self._revoke(lease_id) for lease_id in expired))

    async def _revoke(self, lease_id: int) -> None:
        data = commands.encode(commands.LeaseRevoke(lease_id))
        try:
            committed = await self.node.propose(data, self.node.deadline())
        except (NodeError, RaftUsageError) as exc:
            event(self.log, "lease revoke failed", logging.WARNING, lease=lease_id, error=str(exc))
            return
        self.clock.forget(lease_id)
        deleted = committed.result.get("deleted") if isinstance(committed.result, dict) else None
        event(self.log, "lease expired", lease=lease_id, deleted_keys=deleted)
