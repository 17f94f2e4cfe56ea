"""An in-memory cluster of ``RawNode``s driven by hand, for unit and golden tests.

It plays the caller's part of the Ready contract exactly (persist, send,
apply, answer reads, advance) over ``MemoryStorage`` and a FIFO "network"
with partitions, and records what happens in the ``describe`` text form.
"""

from __future__ import annotations

import random
import shlex
from dataclasses import dataclass, field, replace

from raftpod_sidecar.raft.confchange import apply_change, decode_conf_change
from raftpod_sidecar.raft.describe import (
    describe_conf,
    describe_entry,
    describe_message,
    describe_ready,
    describe_status,
)
from raftpod_sidecar.raft.errors import RaftUsageError
from raftpod_sidecar.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Member,
    Message,
    ReadState,
    Role,
    Snapshot,
)
from raftpod_sidecar.raft.node import Config, RawNode, bootstrap_snapshot
from raftpod_sidecar.raft.storage import MemoryStorage

MAX_ROUNDS = 1000


def node_id(token: str) -> str:
    """``1`` -> ``n1`` (scripts use numbers); ids that already look like ``nX`` pass through."""
    return token if token.startswith("n") else f"n{token}"


@dataclass
class Peer:
    """One node plus everything its caller keeps: storage, applied state, conf view, reads."""

    node: RawNode
    storage: MemoryStorage
    config: Config
    applied: list[bytes] = field(default_factory=list)
    applied_index: int = 0
    conf: ConfState = field(default_factory=ConfState)
    reads: list[ReadState] = field(default_factory=list)


class Cluster:
    def __init__(self, seed: int = 0, **config: object) -> None:
        self.seed = seed
        self.defaults = config
        self.peers: dict[str, Peer] = {}
        self.inflight: list[Message] = []
        self.isolated: set[str] = set()
        self.out: list[str] = []
        self.founding_conf = ConfState()

    # ------------------------------------------------------------------ building
    def config_for(self, nid: str, **overrides: object) -> Config:
        options: dict[str, object] = {"election_ticks": (10, 20), "heartbeat_ticks": 5}
        options.update(self.defaults)
        options.update(overrides)
        return Config(id=nid, **options)  # type: ignore[arg-type]

    def add_nodes(
        self,
        n: int,
        voters: list[str] | None = None,
        learners: list[str] | None = None,
        **cfg: object,
    ) -> list[str]:
        """Start ``n`` founding nodes sharing one bootstrap configuration."""
        ids = [f"n{len(self.peers) + i + 1}" for i in range(n)]
        voters = voters if voters is not None else ids
        learners = learners or []
        members = [Member(i, f"{i}.local:7000", i in voters) for i in ids]
        members = [m for m in members if m.voter or m.id in learners]
        conf = self.founding_conf = ConfState(tuple(sorted(members)))
        for nid in ids:
            storage = MemoryStorage()
            if nid in voters or nid in learners:
                storage.apply_snapshot(bootstrap_snapshot(conf))
            self._start(nid, storage, self.config_for(nid, **cfg))
        return ids

    def add_joining(self, nid: str, **cfg: object) -> None:
        """A node with empty storage, waiting to be added by the leader."""
        self._start(nid, MemoryStorage(), self.config_for(nid, **cfg))

    def _start(self, nid: str, storage: MemoryStorage, config: Config, applied: int = 0) -> None:
        rng = random.Random(f"{self.seed}:{nid}")
        node = RawNode(replace(config, applied=applied), storage, rng)
        peer = Peer(node, storage, config)
        snap = storage.snapshot()
        peer.conf = snap.meta.conf
        self._restore(peer, snap)
        self.peers[nid] = peer

    def restart(self, nid: str) -> None:
        """Crash and restart ``nid`` from what it persisted (state machine from its snapshot)."""
        old = self.peers[nid]
        self.inflight = [m for m in self.inflight if nid not in (m.to, m.frm)]
        snap = old.storage.snapshot()
        self._start(nid, old.storage, old.config, applied=snap.meta.index)

    def wipe(self, nid: str) -> None:
        """Restart ``nid`` with its data lost: storage holds only the bootstrap snapshot of
        the founding configuration again (what re-running bootstrap on an empty dir does)."""
        old = self.peers[nid]
        self.inflight = [m for m in self.inflight if nid not in (m.to, m.frm)]
        storage = MemoryStorage()
        storage.apply_snapshot(bootstrap_snapshot(self.founding_conf))
        self._start(nid, storage, old.config)

    def _restore(self, peer: Peer, snap: Snapshot) -> None:
        peer.applied = [d for d in snap.data.split(b"|") if d] if snap.data else []
        peer.applied_index = snap.meta.index
        peer.conf = snap.meta.conf

    # ------------------------------------------------------------------ the caller's loop
    def process_ready(self, nid: str, log: bool = True) -> bool:
        peer = self.peers[nid]
        node = peer.node
        if not node.has_ready():
            return False
        rd = node.ready()
        if log:
            self.out.append(f"> {nid} handling Ready")
            self.out.extend(f"  {line}" for line in describe_ready(rd._replace(messages=())))
            if rd.messages:
                self.out.append("  messages:")
                self.out.extend(
                    f"    {describe_message(m)}{self._cut_mark(m)}" for m in rd.messages
                )
        storage = peer.storage
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
            self._restore(peer, rd.snapshot)
        if rd.entries:
            storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        self.inflight.extend(m for m in rd.messages if not self._cut(m))
        for e in rd.committed_entries:
            self._apply(peer, e)
        peer.reads.extend(rd.read_states)
        node.advance(rd)
        return True

    def _apply(self, peer: Peer, e: Entry) -> None:
        assert e.index == peer.applied_index + 1, (e.index, peer.applied_index)
        peer.applied_index = e.index
        if e.type == EntryType.CONF_CHANGE:
            peer.conf = apply_change(peer.conf, decode_conf_change(e.data))
        elif e.data:
            peer.applied.append(e.data)

    def _cut(self, m: Message) -> bool:
        return m.to in self.isolated or m.frm in self.isolated

    def _cut_mark(self, m: Message) -> str:
        return "  DROPPED" if self._cut(m) else ""

    def deliver(self, nid: str | None = None, log: bool = True) -> int:
        """Step every in-flight message addressed to ``nid`` (all if None), in FIFO order."""
        todo = [m for m in self.inflight if nid is None or m.to == nid]
        self.inflight = [m for m in self.inflight if not (nid is None or m.to == nid)]
        by_target: dict[str, list[Message]] = {}
        for m in todo:
            by_target.setdefault(m.to, []).append(m)
        for to in sorted(by_target):
            if log:
                self.out.append(f"> {to} receiving messages")
            for m in by_target[to]:
                if log:
                    self.out.append(f"  {describe_message(m)}{self._cut_mark(m)}")
                if not self._cut(m) and to in self.peers:
                    self.peers[to].node.step(m)
        return len(todo)

    def stabilize(self, ids: list[str] | None = None, log: bool = True) -> None:
        ids = ids or sorted(self.peers)
        for _ in range(MAX_ROUNDS):
            busy = False
            for nid in ids:
                busy |= self.process_ready(nid, log)
            for nid in ids:
                busy |= self.deliver(nid, log) > 0
            if not busy:
                return
        raise AssertionError("cluster did not stabilize")

    def tick(self, nid: str, n: int) -> None:
        for _ in range(n):
            self.peers[nid].node.tick()

    def leader(self) -> str:
        leaders = [i for i, p in self.peers.items() if p.node.role == Role.LEADER]
        assert len(leaders) <= 1 or len({self.peers[i].node.term for i in leaders}) == len(leaders)
        return max(leaders, key=lambda i: self.peers[i].node.term) if leaders else ""

    # ------------------------------------------------------------------ scripts
    def run_command(self, line: str) -> str:
        """Run one golden-script command; returns its output text."""
        self.out = []
        words = shlex.split(line)
        cmd, args = words[0], words[1:]
        handler = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {cmd!r}")
        try:
            handler(*args)
        except RaftUsageError as exc:
            self.out.append(f"error: {type(exc).__name__}: {exc}")
        return "\n".join(self.out) if self.out else "ok"

    def cmd_add_nodes(self, n: str, *opts: str) -> None:
        kw: dict[str, object] = {}
        voters = learners = None
        for opt in opts:
            key, _, value = opt.partition("=")
            if key == "voters":
                voters = [node_id(v) for v in value.split(",")]
            elif key == "learners":
                learners = [node_id(v) for v in value.split(",")]
            elif key in ("pre_vote", "check_quorum"):
                kw[key] = value == "true"
            else:
                kw[key] = int(value)
        if "join" in kw:
            del kw["join"]
            for _ in range(int(n)):
                self.add_joining(f"n{len(self.peers) + 1}", **kw)
        else:
            self.add_nodes(int(n), voters, learners, **kw)
        self.cmd_raft_state()

    def cmd_campaign(self, who: str) -> None:
        self.peers[node_id(who)].node.campaign()

    def cmd_propose(self, who: str, data: str) -> None:
        index, term = self.peers[node_id(who)].node.propose(data.encode())
        self.out.append(f"proposed {term}/{index}")

    def cmd_conf_change(self, who: str, kind: str, target: str) -> None:
        tid = node_id(target)
        cc_type = ConfChangeType[kind.upper().replace("-", "_")]
        address = f"{tid}.local:7000" if cc_type == ConfChangeType.ADD_LEARNER else ""
        index, term = self.peers[node_id(who)].node.propose_conf_change(
            ConfChange(cc_type, tid, address)
        )
        self.out.append(f"proposed {term}/{index}")

    def cmd_stabilize(self, *who: str) -> None:
        self.stabilize([node_id(w) for w in who] or None)

    def cmd_process_ready(self, *who: str) -> None:
        for w in who:
            self.process_ready(node_id(w))

    def cmd_deliver_msgs(self, *who: str) -> None:
        if not who:
            self.deliver()
        for w in who:
            self.deliver(node_id(w))

    def cmd_tick(self, who: str, n: str) -> None:
        self.tick(node_id(who), int(n))

    def cmd_tick_election(self, who: str) -> None:
        nid = node_id(who)
        self.tick(nid, self.peers[nid].config.election_ticks[1])

    def cmd_tick_heartbeat(self, who: str) -> None:
        nid = node_id(who)
        self.tick(nid, self.peers[nid].config.heartbeat_ticks)

    def cmd_partition(self, *who: str) -> None:
        self.isolated = {node_id(w) for w in who}

    def cmd_heal(self) -> None:
        self.isolated = set()

    def cmd_transfer_leadership(self, frm: str, to: str) -> None:
        self.peers[node_id(frm)].node.transfer_leadership(node_id(to))

    def cmd_read_index(self, who: str, ctx: str, *opts: str) -> None:
        self.peers[node_id(who)].node.read_index(ctx.encode(), lease="lease" in opts)

    def cmd_reads(self, who: str) -> None:
        """Handle ``who``'s Ready, then list (and forget) the read states it produced so far."""
        self.process_ready(node_id(who))
        peer = self.peers[node_id(who)]
        for r in peer.reads:
            self.out.append(f"index={r.index} ctx={r.context.decode()}")
        peer.reads.clear()

    def cmd_compact(self, who: str, index: str) -> None:
        """Snapshot the state machine at its applied index and drop the log up to ``index``."""
        peer = self.peers[node_id(who)]
        peer.storage.create_snapshot(peer.applied_index, peer.conf, b"|".join(peer.applied))
        peer.storage.compact(int(index))
        self.out.append(
            f"{node_id(who)} snapshot at {peer.applied_index}, log starts at "
            f"{peer.storage.first_index()}"
        )

    def cmd_status(self, who: str) -> None:
        self.out.extend(describe_status(self.peers[node_id(who)].node.status()))

    def cmd_raft_state(self) -> None:
        for nid in sorted(self.peers):
            st = self.peers[nid].node.status()
            self.out.append(
                f"{nid}: {st.role.name} term={st.term} leader={st.leader or '-'} commit={st.commit}"
                f" {describe_conf(st.conf)}"
            )

    def cmd_log(self, who: str) -> None:
        peer = self.peers[node_id(who)]
        storage = peer.storage
        entries = storage.entries(storage.first_index(), storage.last_index() + 1, 1 << 62)
        first = storage.first_index()
        self.out.append(f"log from {first}: " + ", ".join(describe_entry(e) for e in entries))
        self.out.append(
            f"applied {peer.applied_index}: " + ",".join(d.decode() for d in peer.applied)
        )

    def cmd_restart(self, who: str) -> None:
        self.restart(node_id(who))

    def cmd_wipe(self, who: str) -> None:
        self.wipe(node_id(who))

    def cmd_report_unreachable(self, who: str, peer: str) -> None:
        self.peers[node_id(who)].node.report_unreachable(node_id(peer))

    def cmd_report_snapshot(self, who: str, peer: str, outcome: str) -> None:
        self.peers[node_id(who)].node.report_snapshot(node_id(peer), outcome == "ok")

    def cmd_drop_msgs(self, *who: str) -> None:
        """Lose every in-flight message to (or, with none given, between) these nodes."""
        ids = {node_id(w) for w in who}
        lost = [m for m in self.inflight if not ids or m.to in ids]
        self.inflight = [m for m in self.inflight if m not in lost]
        self.out.extend(f"  {describe_message(m)}  DROPPED" for m in lost)
