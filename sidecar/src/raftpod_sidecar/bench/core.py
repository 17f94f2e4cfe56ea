"""The ``core`` benchmark: committed entries per second through 3 in-memory ``RawNode``s.

No network, no disk, no faults and no invariant checks (the simulator has
those): messages go straight from one core's Ready to the next core's ``step``,
so the figure is the protocol's own cost in this Python process, the ceiling a
sidecar could reach before I/O. CPU time is ``time.process_time``.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass

from ..raft.messages import ConfState, Member, Message, Role
from ..raft.node import Config, RawNode, bootstrap_snapshot
from ..raft.storage import MemoryStorage

MAX_ROUNDS_PER_ENTRY = 1000  # generous bound on the driving loop


@dataclass(frozen=True)
class CoreResult:
    nodes: int
    entry_bytes: int
    entries: int
    seconds: float
    cpu_seconds: float

    @property
    def entries_per_second(self) -> float:
        return self.entries / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_seconds_per_entry(self) -> float:
        return self.cpu_seconds / self.entries if self.entries else 0.0


class _Node:
    def __init__(self, node_id: str, conf: ConfState) -> None:
        self.storage = MemoryStorage()
        self.storage.apply_snapshot(bootstrap_snapshot(conf))
        self.raw = RawNode(Config(id=node_id), self.storage, random.Random(node_id))
        self.applied = 0


def _drive(nodes: dict[str, _Node], inbox: deque[Message]) -> None:
    """Deliver every queued message and handle every Ready until the cluster is quiet."""
    while True:
        while inbox:
            msg = inbox.popleft()
            nodes[msg.to].raw.step(msg)
        busy = False
        for node in nodes.values():
            raw = node.raw
            while raw.has_ready():
                busy = True
                rd = raw.ready()
                storage = node.storage
                if rd.snapshot is not None:
                    storage.apply_snapshot(rd.snapshot)
                storage.append(rd.entries)
                if rd.hard_state is not None:
                    storage.set_hard_state(rd.hard_state)
                inbox.extend(rd.messages)
                if rd.committed_entries:
                    node.applied = rd.committed_entries[-1].index
                raw.advance(rd)
        if not busy and not inbox:
            return


def run_core(entries: int, entry_bytes: int = 100, batch: int = 64, nodes: int = 3) -> CoreResult:
    """Commit ``entries`` proposals of ``entry_bytes``, ``batch`` proposed per round."""
    ids = [f"n{i}" for i in range(1, nodes + 1)]
    conf = ConfState(tuple(Member(i, "", voter=True) for i in ids))
    cluster = {i: _Node(i, conf) for i in ids}
    inbox: deque[Message] = deque()
    leader = cluster[ids[0]]
    leader.raw.campaign()
    _drive(cluster, inbox)
    if leader.raw.role != Role.LEADER:
        raise RuntimeError("the benchmark cluster did not elect its leader")
    _drive(cluster, inbox)
    payload = bytes(entry_bytes)
    start_applied = leader.applied
    target = start_applied + entries
    proposed = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(entries * MAX_ROUNDS_PER_ENTRY):
        if leader.applied >= target:
            break
        for _ in range(min(batch, entries - proposed)):
            leader.raw.propose(payload)
            proposed += 1
        _drive(cluster, inbox)
        for node in cluster.values():
            node.raw.tick()
    else:
        raise RuntimeError("the benchmark did not commit every entry")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return CoreResult(nodes, entry_bytes, leader.applied - start_applied, wall, cpu)
