"""What the outside world asks of the cluster: client writes and reads, and operator work.

Clients write with sessions (client id + sequence number), one request at a
time, and retry the *same* sequence number on another node after a refusal, a
lost entry or a timeout, so the log really does collect duplicates that only
the ``SessionTable`` keeps from being applied twice. A write sent to a leader
is acknowledged when that leader applies the entry at the index it promised.
A write sent to a follower that knows its leader is, half the time, forwarded
in a PROP (as the sidecar does) instead of retried on the leader: nothing
answers a PROP, so it is acknowledged when that follower applies any entry
carrying the session; the follower re-sends it to every new leader it sees,
and the client re-sends it (anywhere) after a timeout. Either way the
acknowledgement names the index where the session says the write took effect.
Each new write lands on a random node, as through a Kubernetes Service.
Reads alternate between ReadIndex and lease reads, on leaders and followers.
The "operator" adds learners, promotes them, removes voters (keeping at least
three most of the time), hands leadership over, and snapshots nodes at random
applied indexes. Everything is drawn from the workload's own RNG streams.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..raft.confchange import decode_conf_change
from ..raft.errors import RaftUsageError
from ..raft.messages import ConfChange, ConfChangeType, Entry, EntryType, Role
from .cluster import TICK, Cluster, SimNode

CLIENTS = 4
PROPOSE_RATE = 0.1  # per idle client per time unit
READ_RATE = 0.05
CONF_CHANGE_RATE = 0.01
TRANSFER_RATE = 0.003
SNAPSHOT_RATE = 0.01
REQUEST_TIMEOUT = 25 * TICK
FORWARD_SHARE = 0.5  # of writes sent to a follower that knows its leader
MIN_VOTERS = 3
MAX_EXTRA_VOTERS = 2
STOP_DELAY = (0, 40)  # from a node's removal being applied to the operator deleting it


@dataclass
class _Waiting:
    """A proposal accepted by ``node`` at (``index``, ``term``), or forwarded by it (index 0)."""

    node: str
    index: int
    term: int
    deadline: int
    leader: str = ""  # where a forwarded write went last


class Client:
    """One session: proposes ``seq`` until it is acknowledged, then ``seq + 1``.

    ``forward_share`` of its writes that land on a follower knowing its leader are
    forwarded; ``via_followers`` sends them to the most caught-up voting follower, if
    any (else to the leader).
    """

    def __init__(
        self, client_id: str, forward_share: float = FORWARD_SHARE, via_followers: bool = False
    ) -> None:
        self.id = client_id
        self.forward_share = forward_share
        self.via_followers = via_followers
        self.seq = 1
        self.busy = False
        self.waiting: _Waiting | None = None
        self.retry_at = 0
        self.target = ""
        self.acked = 0

    def data(self) -> bytes:
        return f"{self.id}/{self.seq}".encode()


class Workload:
    def __init__(self, cluster: Cluster, seed: int, founders: int, lease_checked: bool) -> None:
        self.cluster = cluster
        self.rng = random.Random(f"{seed}/workload")
        self.forward_rng = random.Random(f"{seed}/forward")
        self.clients = [Client(f"c{i}") for i in range(1, CLIENTS + 1)]
        self.probe: Client | None = None
        self.min_voters = min(MIN_VOTERS, founders)
        self.max_voters = max(founders, MIN_VOTERS) + MAX_EXTRA_VOTERS
        self.next_node = founders + 1
        self.lease_checked = lease_checked
        self.active = True
        self._reads = 0
        self._stops: list[tuple[int, str]] = []
        self._confchange_indexes: set[int] = set()
        cluster.apply_hooks.append(self._on_apply)

    # -- one step of outside activity ----------------------------------------------------
    def act(self) -> None:
        now, rng = self.cluster.now, self.rng
        for client in self.clients:
            if not client.busy and self.active and rng.random() < PROPOSE_RATE:
                client.busy = True
            self._drive(client, now)
        if self.probe is not None:
            self._drive(self.probe, now)
        self._stop_removed(now)
        if not self.active:
            return
        if rng.random() < READ_RATE:
            self._read()
        if rng.random() < CONF_CHANGE_RATE:
            self._change_membership()
        if rng.random() < TRANSFER_RATE:
            self._transfer()
        if rng.random() < SNAPSHOT_RATE:
            self._snapshot()

    def start_probe(self) -> None:
        """After healing: one fresh write whose commit proves the cluster is live again.

        It goes through a follower's PROP whenever the cluster has a voting follower, so a
        leader that never takes forwarded proposals fails the liveness check (unless
        that follower happens to become the leader and propose it itself).
        """
        self.active = False
        self.probe = Client("probe", forward_share=1.0, via_followers=True)
        self.probe.busy = True

    @property
    def probe_done(self) -> bool:
        return self.probe is not None and self.probe.acked > 0

    @property
    def acked(self) -> int:
        return sum(c.acked for c in self.clients)

    # -- writes ---------------------------------------------------------------------------
    def _drive(self, client: Client, now: int) -> None:
        waiting = client.waiting
        if waiting is not None:
            if now < waiting.deadline:
                if waiting.index == 0:
                    self._resend_to_new_leader(client, waiting)
                return
            client.waiting = None  # timed out: try the same seq elsewhere
            client.target = ""
        if not client.busy or now < client.retry_at:
            return
        node = self._pick(client)
        if node is None:
            client.retry_at = now + TICK
            return
        raw = node.core()
        forward = raw.role != Role.LEADER and raw.lead
        if forward and self.forward_rng.random() < client.forward_share:
            leader = raw.forward(client.data(), client.id, client.seq)
            client.waiting = _Waiting(node.id, 0, 0, now + REQUEST_TIMEOUT, leader)
            self._forwarded(client, node, leader)
            return
        try:
            index, term = raw.propose(client.data(), client.id, client.seq)
        except RaftUsageError as exc:
            client.target = getattr(exc, "leader", "")
            client.retry_at = now + self.rng.randint(1, 2 * TICK)
            return
        client.waiting = _Waiting(node.id, index, term, now + REQUEST_TIMEOUT)
        self._trace(f"{client.id} propose seq={client.seq} -> {node.id} at {term}/{index}")

    def _resend_to_new_leader(self, client: Client, waiting: _Waiting) -> None:
        """A forwarded write goes again when its node sees a new leader, as the sidecar does.

        The node proposes it itself if it is that leader; either way the client still
        waits for the node to apply some copy, until the first send's deadline.
        """
        node = self.cluster.nodes.get(waiting.node)
        if node is None or node.raw is None:
            return
        raw = node.raw
        leader = node.id if raw.role == Role.LEADER else raw.lead
        if not leader or leader == waiting.leader:
            return
        try:
            if leader == node.id:
                raw.propose(client.data(), client.id, client.seq)
            else:
                raw.forward(client.data(), client.id, client.seq)
        except RaftUsageError:
            return  # a transfer under way: again next step
        waiting.leader = leader
        self._forwarded(client, node, leader, "resend")

    def _forwarded(self, client: Client, node: SimNode, leader: str, what: str = "forward") -> None:
        self.cluster.stats.forwards += 1
        self._trace(f"{client.id} {what} seq={client.seq} via {node.id} to {leader}")

    def _pick(self, client: Client) -> SimNode | None:
        node = self.cluster.nodes.get(client.target)
        if node is not None and node.up:
            return node
        live = self.cluster.live()
        if client.via_followers:
            # the most caught-up voting follower: one still installing a snapshot (any
            # learner may be) cannot apply, and so answer, a write in time
            leaders = [n for n in live if n.core().role == Role.LEADER]
            voting = [
                n for n in live if n not in leaders and not n.removed and n.id in n.sm.conf.voters()
            ]
            if voting:
                return max(voting, key=lambda n: n.sm.applied)
            live = leaders or live
        return self.rng.choice(live) if live else None

    def _on_apply(self, node: SimNode, entry: Entry) -> None:
        if entry.type == EntryType.CONF_CHANGE:
            self._on_conf_change(entry)
        for client in (*self.clients, self.probe):
            if client is None:
                continue
            waiting = client.waiting
            if waiting is None or waiting.node != node.id:
                continue
            ours = entry.client == client.id and entry.seq == client.seq
            if ours and waiting.index in (0, entry.index):
                self._ack(client, node)
            elif waiting.index == entry.index:
                client.waiting = None
                client.retry_at = self.cluster.now  # our entry lost its slot: retry now

    def _ack(self, client: Client, node: SimNode) -> None:
        """``node`` applied a copy of the client's write; tell the client where it took effect."""
        client.waiting = None
        index = node.sm.applied_at(client.id, client.seq)
        self.cluster.checker.proposal_acked((client.id, client.seq), index)
        self._trace(f"{client.id} acked seq={client.seq} at {index} on {node.id}")
        client.acked += 1
        client.seq += 1
        client.busy = False
        client.target = ""  # the next write lands anywhere, as through a Kubernetes Service

    # -- reads ------------------------------------------------------------------------------
    def _read(self) -> None:
        live = self.cluster.live()
        if not live:
            return
        lease = self.rng.random() < 0.5
        if lease:
            # lease reads matter on leaders, stale (partitioned) leaders most of all
            leaders = [n for n in live if n.core().role == Role.LEADER]
            live = leaders or live
        node = self.rng.choice(live)
        self._reads += 1
        context = f"r{self._reads}".encode()
        try:
            node.core().read_index(context, lease)
        except RaftUsageError:
            return
        self.cluster.checker.read_started(context, checked=not lease or self.lease_checked)
        self._trace(f"read {context.decode()} on {node.id}{' lease' if lease else ''}")

    # -- the operator --------------------------------------------------------------------------
    def _change_membership(self) -> None:
        leader = self.cluster.leader()
        if leader is None:
            return
        status = leader.core().status()
        voters, learners = status.conf.voters(), status.conf.learners()
        rng = self.rng
        cc: ConfChange | None = None
        if learners:
            learner = learners[0]
            progress = status.progress.get(learner)
            caught_up = progress is not None and progress.match >= status.commit
            if caught_up and len(voters) < self.max_voters:
                cc = ConfChange(ConfChangeType.PROMOTE, learner)
            elif rng.random() < 0.3:
                cc = ConfChange(ConfChangeType.REMOVE, learner)
        elif len(voters) < self.max_voters and rng.random() < 0.5:
            new_id = f"n{self.next_node}"
            cc = ConfChange(ConfChangeType.ADD_LEARNER, new_id, f"{new_id}:7000")
        elif len(voters) > self.min_voters:
            cc = ConfChange(ConfChangeType.REMOVE, rng.choice(voters))
        if cc is None:
            return
        try:
            leader.core().propose_conf_change(cc)
        except RaftUsageError:
            return
        self._trace(f"{leader.id} propose {cc.type.name} {cc.node_id}")
        if cc.type == ConfChangeType.ADD_LEARNER:
            self.next_node += 1
            self.cluster.add_node(cc.node_id)

    def _on_conf_change(self, entry: Entry) -> None:
        if entry.index not in self._confchange_indexes:
            self._confchange_indexes.add(entry.index)
            self.cluster.stats.confchanges += 1
        cc = decode_conf_change(entry.data)
        node = self.cluster.nodes.get(cc.node_id)
        if cc.type == ConfChangeType.REMOVE and node is not None and not node.removed:
            node.removed = True
            self._stops.append((self.cluster.now + self.rng.randint(*STOP_DELAY), cc.node_id))

    def _stop_removed(self, now: int) -> None:
        due = [node_id for at, node_id in self._stops if at <= now]
        if due:
            self._stops = [(at, node_id) for at, node_id in self._stops if at > now]
            for node_id in due:
                self.cluster.crash(node_id, "removed, stopped")

    def _transfer(self) -> None:
        leader = self.cluster.leader()
        if leader is None:
            return
        raw = leader.core()
        others = [v for v in raw.status().conf.voters() if v != leader.id]
        if not others:
            return
        target = self.rng.choice(others)
        try:
            raw.transfer_leadership(target)
        except RaftUsageError:
            return
        self.cluster.stats.transfers += 1
        self._trace(f"{leader.id} transfer leadership to {target}")

    def _snapshot(self) -> None:
        live = self.cluster.live()
        if live:
            self.cluster.take_snapshot(self.rng.choice(live), self.rng.randint(0, 4))

    def _trace(self, text: str) -> None:
        trace = self.cluster.trace
        if trace.enabled:
            trace.add(self.cluster.now, text)
