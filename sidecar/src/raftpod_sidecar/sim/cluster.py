"""N Raft cores over the simulated network and disks, driven exactly as the sidecar drives one.

One ``step()`` is one unit of virtual time: nodes whose (possibly skewed) clock
is due tick, due messages are delivered, then every live node's Ready is handled
in the documented order (persist, send, apply, answer reads, advance), with the
invariant checker told about each thing persisted, committed and applied. A
node may be armed to crash at any point inside that sequence; a crashed node
keeps only its ``Disk`` and is rebuilt from it on restart.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum

from ..raft.describe import describe_entry, describe_hard_state, describe_message
from ..raft.messages import (
    ConfState,
    Entry,
    Member,
    Message,
    MessageType,
    ReadState,
    Ready,
    Role,
)
from ..raft.node import Config, RawNode, bootstrap_snapshot
from .disk import Disk
from .invariants import InvariantChecker
from .network import Network
from .statemachine import StateMachine
from .trace import Trace

TICK = 4
"""Virtual time units per tick on a correct clock (skewed clocks use 3 to 6)."""
ELECTION_TICKS = (10, 20)
HEARTBEAT_TICKS = 2
LATENCY = (1, 3)
REORDER_LATENCY = (1, 12)
SLOW_LATENCY = (13, 60)  # the long tail of reordered messages, up to 15 ticks
MAX_READY_ROUNDS = 8


class CrashPoint(IntEnum):
    """Where inside Ready handling an armed node dies."""

    BEFORE_PERSIST = 0
    AFTER_PERSIST = 1  # persisted, but nothing sent: the classic "fsync then crash"
    AFTER_SEND = 2
    AFTER_APPLY = 3  # applied but never advanced


@dataclass
class Stats:
    snapshots: int = 0
    snapshots_installed: int = 0
    confchanges: int = 0
    transfers: int = 0
    reads: int = 0
    forwards: int = 0  # forwarded writes sent: PROPs, and re-sends by a node now leading


class SimNode:
    """One node: its disk (survives crashes) and, while up, its core and state machine."""

    def __init__(self, node_id: str) -> None:
        self.id = node_id
        self.disk = Disk()
        self.raw: RawNode | None = None
        self.sm = StateMachine()
        self.incarnation = 0
        self.tick_every = TICK
        self.next_tick = 0
        self.reads: list[ReadState] = []  # answered by the core, waiting for apply
        self.crash_point: CrashPoint | None = None
        self.removed = False

    @property
    def up(self) -> bool:
        return self.raw is not None

    def core(self) -> RawNode:
        if self.raw is None:
            raise RuntimeError(f"{self.id} is down")
        return self.raw


ApplyHook = Callable[[SimNode, Entry], None]


def core_profile(seed: int) -> Config:
    """The core's tunables for this seed: varied so every flow-control path gets exercised.

    Pre-vote and check-quorum are usually on (as the sidecar runs them); the
    window, batch and chunk sizes range from pathological to generous.
    """
    rng = random.Random(f"{seed}/profile")
    return Config(
        id="-",
        election_ticks=ELECTION_TICKS,
        heartbeat_ticks=HEARTBEAT_TICKS,
        pre_vote=rng.random() < 0.85,
        check_quorum=rng.random() < 0.85,
        max_inflight=rng.choice((1, 4, 8, 256)),
        max_msg_bytes=rng.choice((1, 200, 2048, 1 << 20)),
        snapshot_chunk_bytes=rng.choice((16, 64, 1024, 1 << 20)),
    )


class Cluster:
    """The simulated nodes, the network, virtual time and the invariant checker."""

    def __init__(self, seed: int, nodes: int, trace: Trace) -> None:
        self.seed = seed
        self.now = 0
        self.trace = trace
        self.profile = profile = core_profile(seed)
        if trace.enabled:
            trace.add(
                0,
                f"core profile: pre_vote={profile.pre_vote} check_quorum={profile.check_quorum} "
                f"max_inflight={profile.max_inflight} max_msg_bytes={profile.max_msg_bytes} "
                f"snapshot_chunk_bytes={profile.snapshot_chunk_bytes}",
            )
        self.network = Network(LATENCY, REORDER_LATENCY, f"{seed}", SLOW_LATENCY)
        self.checker = InvariantChecker()
        self.stats = Stats()
        self.nodes: dict[str, SimNode] = {}
        self.apply_hooks: list[ApplyHook] = []
        founders = [f"n{i}" for i in range(1, nodes + 1)]
        conf = ConfState(tuple(Member(i, f"{i}:7000", voter=True) for i in founders))
        for node_id in founders:
            node = self.nodes[node_id] = SimNode(node_id)
            node.disk.storage.apply_snapshot(bootstrap_snapshot(conf))
            self.start(node_id)

    # -- membership of the simulation ----------------------------------------------
    def add_node(self, node_id: str) -> SimNode:
        """A fresh node with an empty disk; it learns everything from the leader."""
        node = self.nodes[node_id] = SimNode(node_id)
        self.start(node_id)
        return node

    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.raw is not None]

    def leader(self) -> SimNode | None:
        """The live leader of the highest term, if any."""
        best: SimNode | None = None
        for node in self.live():
            raw = node.core()
            if raw.role == Role.LEADER and (best is None or raw.term > best.core().term):
                best = node
        return best

    # -- life and death -------------------------------------------------------------
    def start(self, node_id: str) -> None:
        """(Re)build a node's core and state machine from its disk alone."""
        node = self.nodes[node_id]
        storage = node.disk.storage
        snapshot = storage.snapshot()
        node.sm = StateMachine.restore(snapshot)
        config = replace(self.profile, id=node_id, applied=snapshot.meta.index)
        rng = random.Random(f"{self.seed}/{node_id}/{node.incarnation}")
        node.raw = RawNode(config, storage, rng)
        node.incarnation += 1
        node.next_tick = self.now + node.tick_every
        node.reads = []
        node.crash_point = None
        self.checker.node_restarted(
            node_id, storage.hard_state, snapshot.meta.index, node.sm.command_keys()
        )
        if self.trace.enabled:
            hs = describe_hard_state(storage.hard_state)
            self.trace.add(self.now, f"{node_id} start #{node.incarnation} {hs}")

    def crash(self, node_id: str, why: str = "crash") -> None:
        """Lose everything but the disk."""
        node = self.nodes[node_id]
        if node.raw is None:
            return
        node.raw = None
        node.reads = []
        node.crash_point = None
        self.checker.node_down(node_id)
        if self.trace.enabled:
            self.trace.add(self.now, f"{node_id} {why}")

    # -- time -------------------------------------------------------------------------
    def step(self) -> None:
        """One unit of virtual time: ticks, deliveries, then every node's Ready."""
        self.now += 1
        now = self.now
        for node in self.live():
            if now >= node.next_tick:
                node.next_tick = now + node.tick_every
                node.core().tick()
        for msg in self.network.due(now):
            self._deliver(msg)
        for node in self.live():
            self.handle_ready(node)

    def _deliver(self, msg: Message) -> None:
        target = self.nodes.get(msg.to)
        if target is None or target.raw is None:
            sender = self.nodes.get(msg.frm)
            if sender is not None and sender.raw is not None:
                # a real transport sees the refused connection
                sender.raw.report_unreachable(msg.to)
                if msg.type == MessageType.SNAP:
                    sender.raw.report_snapshot(msg.to, False)
            return
        if self.trace.enabled:
            self.trace.add(self.now, f"deliver {describe_message(msg)}")
        target.raw.step(msg)

    # -- the caller's duties, in the documented order ----------------------------------
    def handle_ready(self, node: SimNode) -> None:
        for _ in range(MAX_READY_ROUNDS):
            raw = node.raw
            if raw is None or not raw.has_ready():
                return
            rd = raw.ready()
            if not self._handle_one(node, raw, rd):
                return

    def _handle_one(self, node: SimNode, raw: RawNode, rd: Ready) -> bool:
        """Persist, send, apply, answer reads, advance; False if the node crashed meanwhile."""
        if self._crashes_at(node, CrashPoint.BEFORE_PERSIST):
            return False
        self._persist(node, raw, rd)
        if self._crashes_at(node, CrashPoint.AFTER_PERSIST):
            return False
        for msg in rd.messages:
            self.network.send(msg, self.now)
        if self._crashes_at(node, CrashPoint.AFTER_SEND):
            return False
        self._apply(node, rd)
        if self._crashes_at(node, CrashPoint.AFTER_APPLY):
            return False
        raw.advance(rd)
        return True

    def _crashes_at(self, node: SimNode, point: CrashPoint) -> bool:
        if node.crash_point != point:
            return False
        self.crash(node.id, f"crash {point.name.lower()}")
        return True

    def _persist(self, node: SimNode, raw: RawNode, rd: Ready) -> None:
        checker, disk = self.checker, node.disk
        prev_term = disk.persist(rd)
        if self.trace.enabled:
            self._trace_ready(node.id, rd)
        if rd.snapshot is not None:
            self.stats.snapshots_installed += 1
        if rd.entries:
            checker.entries_persisted(node.id, rd.entries, prev_term)
        if rd.hard_state is not None:
            checker.hard_state_persisted(node.id, rd.hard_state, disk)
        if rd.soft_state is not None and rd.soft_state.role == Role.LEADER:
            checker.leader_elected(node.id, raw.term, disk)

    def _apply(self, node: SimNode, rd: Ready) -> None:
        checker = self.checker
        restored = 0
        if rd.snapshot is not None:
            node.sm = StateMachine.restore(rd.snapshot)
            restored = node.sm.applied
            checker.state_restored(node.id, restored, node.sm.command_keys())
        for entry in rd.committed_entries:
            if entry.index <= restored:
                continue  # covered by the snapshot just restored
            command = node.sm.apply(entry)
            checker.entry_applied(node.id, entry, command)
            for hook in self.apply_hooks:
                hook(node, entry)
        for rs in rd.read_states:
            if checker.read_answered(node.id, rs.context, rs.index):
                node.reads.append(rs)
        if node.reads:
            waiting = [rs for rs in node.reads if rs.index > node.sm.applied]
            self.stats.reads += len(node.reads) - len(waiting)
            node.reads = waiting

    def _trace_ready(self, node_id: str, rd: Ready) -> None:
        add, now = self.trace.add, self.now
        if rd.soft_state is not None:
            add(now, f"{node_id} {rd.soft_state.role.name} leader={rd.soft_state.leader or '-'}")
        if rd.hard_state is not None:
            add(now, f"{node_id} persist {describe_hard_state(rd.hard_state)}")
        if rd.snapshot is not None:
            meta = rd.snapshot.meta
            add(now, f"{node_id} persist snapshot {meta.term}/{meta.index}")
        for entry in rd.entries:
            add(now, f"{node_id} persist {describe_entry(entry)}")
        for entry in rd.committed_entries:
            add(now, f"{node_id} apply {describe_entry(entry)}")
        for rs in rd.read_states:
            add(now, f"{node_id} read state index={rs.index} ctx={rs.context.decode()}")

    # -- the application's own work -------------------------------------------------------
    def take_snapshot(self, node: SimNode, keep: int) -> bool:
        """Snapshot ``node``'s state machine at its applied index and compact behind it."""
        storage = node.disk.storage
        index = node.sm.applied
        if index <= storage.snapshot().meta.index or index > storage.last_index():
            return False
        storage.create_snapshot(index, node.sm.conf, node.sm.snapshot_data())
        storage.compact(max(index - keep, storage.first_index() - 1))
        self.stats.snapshots += 1
        if self.trace.enabled:
            self.trace.add(self.now, f"{node.id} snapshot at {index}, keep {keep}")
        return True
