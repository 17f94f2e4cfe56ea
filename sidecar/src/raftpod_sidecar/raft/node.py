"""``RawNode``: the whole Raft protocol as a pure state machine (etcd's ``raft``/``RawNode``).

Inputs are ``tick()``, ``step(msg)`` and the client calls; outputs are
collected into a ``Ready`` the caller persists, sends, applies, then
``advance()``s. No clocks, sockets, threads or global randomness: the same
inputs and the same ``random.Random`` give the same outputs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

from . import roles
from .confchange import apply_change, decode_conf_change, encode_conf_change
from .errors import (
    ConfChangePendingError,
    InvalidConfChangeError,
    InvalidTransferError,
    NotLeaderError,
    TransferInProgressError,
)
from .log import RaftLog
from .messages import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    SoftState,
)
from .messages import MessageType as M
from .progress import Progress, ProgressState
from .quorum import VoteResult, has_quorum
from .readonly import ReadOnly, ReadRequest
from .storage import CompactedError, Storage
from .tracker import ProgressTracker

TRANSFER_CONTEXT = b"transfer"
"""Context of a VOTE sent because of TIMEOUT_NOW: voters skip the in-lease check."""

MAX_APPLY_BYTES = 64 << 20
"""Upper bound on the data of ``Ready.committed_entries`` (the rest comes next Ready)."""

_CAMPAIGN_PRE = 0
_CAMPAIGN_ELECTION = 1
_CAMPAIGN_TRANSFER = 2


@dataclass(frozen=True)
class Config:
    """Tunables of one node; intervals are in ticks."""

    id: str
    election_ticks: tuple[int, int] = (15, 30)  # timeout drawn from [lo, hi) (lo if lo == hi)
    heartbeat_ticks: int = 5
    max_msg_bytes: int = 1 << 20
    max_inflight: int = 256
    pre_vote: bool = True
    check_quorum: bool = True
    snapshot_chunk_bytes: int = 1 << 20
    applied: int = 0  # on restart: index the state machine was restored to

    def __post_init__(self) -> None:
        lo, hi = self.election_ticks
        if not self.id:
            raise ValueError("Config.id must be a non-empty node id")
        if not 0 < self.heartbeat_ticks < lo <= hi:
            raise ValueError("need 0 < heartbeat_ticks < election_ticks[0] <= election_ticks[1]")
        if self.max_inflight < 1 or self.max_msg_bytes < 1 or self.snapshot_chunk_bytes < 1:
            raise ValueError("max_inflight, max_msg_bytes, snapshot_chunk_bytes must be >= 1")

    @property
    def lease_ticks(self) -> int:
        """How long a quorum's acknowledgement keeps a lease valid: the election
        timeout minus a margin for message delay and tick skew."""
        lo = self.election_ticks[0]
        return lo - max(1, lo // 5)


class PeerProgress(NamedTuple):
    match: int
    next: int
    state: ProgressState
    recent_active: bool


class Status(NamedTuple):
    """A consistent snapshot of a node's state for admin endpoints and metrics."""

    id: str
    role: Role
    term: int
    leader: str
    commit: int
    applied: int
    last_index: int
    conf: ConfState
    progress: dict[str, PeerProgress]  # leader only; empty otherwise
    transferee: str
    lease_valid: bool
    vote: str = ""
    first_index: int = 0
    leader_commit: int = 0  # highest commit a leader told us (ours when leading)


def bootstrap_snapshot(conf: ConfState) -> Snapshot:
    """The snapshot every founding member stores before its first start.

    ``storage.apply_snapshot(bootstrap_snapshot(conf))`` gives each node the
    same initial configuration at index 1, term 1. A node that joins later
    starts with empty storage and receives a snapshot from the leader.
    """
    return Snapshot(SnapshotMeta(index=1, term=1, conf=conf))


class RawNode:
    def __init__(self, config: Config, storage: Storage, rng: random.Random) -> None:
        self.config = config
        self.id = config.id
        self._rng = rng
        self.log = RaftLog(storage)
        hard_state, _ = storage.initial_state()
        self.term = hard_state.term
        self.vote = hard_state.vote
        self._restarted = hard_state.term > 0  # it may have acknowledged a leader before
        if hard_state.commit:
            self.log.commit_to(hard_state.commit)
        self.log.applied_to(max(config.applied, self.log.first_index() - 1))
        self.role = Role.FOLLOWER
        self.lead = ""
        self.dropped_messages = 0
        self.tracker = ProgressTracker(config.max_inflight)
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = 0
        self._now = 1  # logical clock; starts at 1 so that a send tick of 0 means "none"
        self._leader_commit = 0  # highest commit index a leader has told us
        self._transferee = ""
        self._pending_conf_index = 0
        self._term_start = 0  # index of this leader's no-op (0 unless leader)
        self._lease_forfeited = False  # sent TIMEOUT_NOW this term
        self._read_only = ReadOnly()
        self._reads_waiting_commit: list[ReadRequest] = []
        self._pending_bcast = False
        self._snap_in: tuple[SnapshotMeta, bytearray] | None = None
        self._conf_index = 0  # index of the entry (or snapshot) that set the configuration
        self._conf_before = ConfState()  # the configuration that entry replaced
        self._recompute_conf()
        self._prev_soft = self._soft_state()
        self._prev_hard = hard_state
        self._reset_timeout()

    # ------------------------------------------------------------------ public API
    def tick(self) -> None:
        """One unit of logical time."""
        self._now += 1
        if self.role == Role.LEADER:
            self._tick_leader()
            return
        self._election_elapsed += 1
        if self._promotable() and self._election_elapsed >= self._randomized_timeout:
            self._election_elapsed = 0
            self.step(Message(M.HUP, self.id, self.id))

    def campaign(self) -> None:
        self.step(Message(M.HUP, self.id, self.id))

    def propose(self, data: bytes, client: str = "", seq: int = 0) -> tuple[int, int]:
        """Append ``data`` as a NORMAL entry; returns its (index, term)."""
        self._check_can_propose()
        # hot path: appending at the end of the log is appending to the unstable list
        unstable = self.log.unstable
        index = unstable.offset + len(unstable.entries)
        unstable.entries.append(Entry(self.term, index, EntryType.NORMAL, data, client, seq))
        self._pending_bcast = True
        if len(self.tracker.voters) == 1:
            self._update_self_and_commit()
        return index, self.term

    def forward(self, data: bytes, client: str, seq: int) -> str:
        """A follower hands a proposal to its leader (etcd's MsgProp); returns the leader's id.

        Nothing confirms delivery: the leader appends it or drops it (lost role, a
        transfer under way), so the caller waits for the entry to be applied and
        re-sends only proposals a client session makes exactly-once.
        """
        if self.role == Role.LEADER or not self.lead:
            raise NotLeaderError(self.lead, self.term)
        entry = Entry(0, 0, EntryType.NORMAL, data, client, seq)
        self._send(Message(M.PROP, self.lead, self.id, self.term, entries=(entry,)))
        return self.lead

    def propose_conf_change(self, cc: ConfChange) -> tuple[int, int]:
        """Append a membership change; one at a time, after this term's no-op has committed."""
        self._check_can_propose()
        if self._pending_conf_index > self.log.committed:
            raise ConfChangePendingError(
                f"a membership change (or this leader's first entry) at index "
                f"{self._pending_conf_index} is not committed yet; retry after it commits"
            )
        apply_change(self.tracker.conf, cc)  # raises InvalidConfChangeError
        index = self.log.last_index() + 1
        data = encode_conf_change(cc)
        self._append([Entry(self.term, index, EntryType.CONF_CHANGE, data)])
        self._pending_conf_index = index
        return index, self.term

    def read_index(self, context: bytes, lease: bool = False) -> None:
        """Ask for a linearizable read point; the answer comes in ``Ready.read_states``."""
        if self.role == Role.LEADER:
            self._leader_read(ReadRequest(0, context, self.id), lease)
        elif self.lead:
            self._send(Message(M.READ_INDEX, self.lead, self.id, self.term, context=context))
        else:
            raise NotLeaderError("", self.term)

    def transfer_leadership(self, to: str) -> None:
        """Hand leadership to voter ``to`` once it is caught up (then TIMEOUT_NOW)."""
        if self.role != Role.LEADER:
            raise NotLeaderError(self.lead, self.term)
        if to == self.id:
            raise InvalidTransferError("cannot transfer leadership to the current leader")
        member = self.tracker.conf.get(to)
        if member is None:
            raise InvalidTransferError(f"{to!r} is not a member of the configuration")
        if not member.voter:
            raise InvalidTransferError(f"{to!r} is a learner; promote it first")
        self._start_transfer(to)

    def report_unreachable(self, peer: str) -> None:
        self.step(Message(M.UNREACHABLE, self.id, peer))

    def report_snapshot(self, peer: str, ok: bool) -> None:
        self.step(Message(M.SNAP_STATUS, self.id, peer, reject=not ok))

    @property
    def transferee(self) -> str:
        return self._transferee

    def lease_valid(self) -> bool:
        """May this leader answer reads without a heartbeat round right now?"""
        return (
            self.role == Role.LEADER
            and self.config.check_quorum
            and self._committed_in_term()
            and self.id in self.tracker.voters
            and not self._lease_forfeited
            and self.tracker.quorum_heard_since(self._now - self.config.lease_ticks, self.id)
        )

    def status(self) -> Status:
        progress: dict[str, PeerProgress] = {}
        if self.role == Role.LEADER:
            for i in sorted(self.tracker.progress):
                pr = self.tracker.progress[i]
                progress[i] = PeerProgress(pr.match, pr.next, pr.state, pr.recent_active)
        return Status(
            id=self.id,
            role=self._reported_role(),
            term=self.term,
            leader=self.lead,
            commit=self.log.committed,
            applied=self.log.applied,
            last_index=self.log.last_index(),
            conf=self.tracker.conf,
            progress=progress,
            transferee=self._transferee,
            lease_valid=self.lease_valid(),
            vote=self.vote,
            first_index=self.log.first_index(),
            leader_commit=max(self._leader_commit, self.log.committed),
        )

    # ------------------------------------------------------------------ Ready
    def has_ready(self) -> bool:
        self._flush()
        log = self.log
        return bool(
            self._msgs
            or log.unstable.entries
            or log.unstable.snapshot is not None
            or log.has_next_committed()
            or self._read_states
            or self._soft_state() != self._prev_soft
            or self._hard_state() != self._prev_hard
        )

    def ready(self) -> Ready:
        """What to persist, send, apply and answer now; hand it back to ``advance``."""
        self._flush()
        soft, hard = self._soft_state(), self._hard_state()
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            entries=self.log.unstable_entries(),
            snapshot=self.log.unstable.snapshot,
            messages=tuple(self._msgs),
            committed_entries=tuple(self.log.next_committed(MAX_APPLY_BYTES)),
            read_states=tuple(self._read_states),
        )
        self._msgs = []
        self._read_states = []
        self._prev_soft, self._prev_hard = soft, hard
        return rd

    def advance(self, rd: Ready) -> None:
        """The caller has done everything ``rd`` asked."""
        log = self.log
        if rd.snapshot is not None:
            log.unstable.stable_snap_to(rd.snapshot.meta.index)
            log.applied_to(rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            log.unstable.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)

    # ------------------------------------------------------------------ step
    def step(self, m: Message) -> None:
        """Feed one message (local event or from a peer); invalid ones are dropped and counted."""
        t = m.type
        if t in _LOCAL_HANDLERS:
            if m.to != self.id or (t in _SELF_EVENTS and m.frm != self.id):
                self.dropped_messages += 1  # a peer cannot trigger our local events
                return
            _LOCAL_HANDLERS[t](self, m)
            return
        if not self._valid_peer_message(m):
            self.dropped_messages += 1
            return
        if t == M.PROP and m.term != self.term:
            self.dropped_messages += 1  # meant for a leader of another term; never moves ours
            return
        if m.term > self.term:
            if t in (M.VOTE, M.PRE_VOTE):
                # Restarted, a node may have answered a leader whose lease still
                # counts on it: it keeps that promise for an election timeout.
                lo = self.config.election_ticks[0]
                in_lease = (
                    self.config.check_quorum
                    and (self.lead != "" or (self._restarted and self._now <= lo))
                    and self._election_elapsed < lo
                )
                if in_lease and m.context != TRANSFER_CONTEXT:
                    return  # a leader is alive: do not let a partitioned node disrupt it
            if t == M.PRE_VOTE or (t == M.PRE_VOTE_RESP and not m.reject):
                pass  # pre-votes never change terms; a granted one answers our term+1 probe
            else:
                lead = m.frm if t in (M.APP, M.HEARTBEAT, M.SNAP) else ""
                self._become_follower(m.term, lead)
        elif m.term < self.term:
            if t in (M.APP, M.HEARTBEAT) and (self.config.check_quorum or self.config.pre_vote):
                # a stale leader (e.g. after a partition): tell it our term so it steps down
                self._send(Message(M.APP_RESP, m.frm, self.id, self.term))
            elif t == M.PRE_VOTE:
                self._send(Message(M.PRE_VOTE_RESP, m.frm, self.id, self.term, reject=True))
            return
        if t in (M.VOTE, M.PRE_VOTE):
            self._handle_vote_request(m)
            return
        if not roles.accepts(self.role, t):
            self.dropped_messages += 1
            return
        if t in roles.FROM_MEMBERS_ONLY and m.frm not in self.tracker.progress:
            self.dropped_messages += 1
            return
        _PEER_HANDLERS[t](self, m)

    def _valid_peer_message(self, m: Message) -> bool:
        if m.to != self.id or not m.frm or m.frm == self.id or m.term < 0:
            return False
        if m.index < 0 or m.log_term < 0 or m.commit < 0:
            return False
        if m.type == M.APP:
            return self._valid_entries(m)
        if m.type == M.PROP:
            return bool(m.entries) and all(e.type == EntryType.NORMAL for e in m.entries)
        if m.type == M.SNAP:
            return (
                m.snapshot is not None
                and m.snapshot.meta.index > 0
                and m.chunk_offset >= 0
                and m.snapshot.meta.term <= m.term
            )
        return m.type in _PEER_HANDLERS or m.type in (M.VOTE, M.PRE_VOTE)

    def _valid_entries(self, m: Message) -> bool:
        """Entries of an APP are contiguous after ``m.index``, terms never decrease and never
        exceed the leader's, conf changes decode."""
        expect = m.index + 1
        prev_term = m.log_term
        for e in m.entries:
            if e.index != expect or e.term < prev_term or e.term > m.term:
                return False
            if e.type != EntryType.NORMAL:
                if e.type != EntryType.CONF_CHANGE:
                    return False
                try:
                    decode_conf_change(e.data)
                except ValueError:
                    return False
            expect += 1
            prev_term = e.term
        return True

    # ------------------------------------------------------------------ local events
    def _on_hup(self, m: Message) -> None:
        if self.role == Role.LEADER or not self._promotable():
            return
        self._campaign(_CAMPAIGN_PRE if self.config.pre_vote else _CAMPAIGN_ELECTION)

    def _on_beat(self, m: Message) -> None:
        if self.role == Role.LEADER:
            self._bcast_heartbeat(self._read_only.last_key())

    def _on_check_quorum(self, m: Message) -> None:
        if self.role == Role.LEADER and not self.tracker.quorum_active(self.id):
            self._become_follower(self.term, "")

    def _on_unreachable(self, m: Message) -> None:
        pr = self._leader_progress(m.frm)
        if pr is not None and pr.state == ProgressState.REPLICATE:
            pr.become_probe()

    def _on_snap_status(self, m: Message) -> None:
        pr = self._leader_progress(m.frm)
        if pr is None or pr.state != ProgressState.SNAPSHOT:
            return
        if m.reject:
            # delivery failed: probe again, which starts a fresh transfer if still needed
            pr.become_probe()
            pr.next = pr.match + 1
            pr.probe_sent = True  # wait for the next heartbeat response before retrying

    def _leader_progress(self, peer: str) -> Progress | None:
        if self.role != Role.LEADER:
            return None
        return self.tracker.progress.get(peer)

    # ------------------------------------------------------------------ elections
    def _promotable(self) -> bool:
        """May this node campaign? Voters may; so may a node whose removal is still
        uncommitted, because the old configuration may still need it to elect a leader
        (Ongaro's thesis §4.2.2); it then does not count its own vote."""
        if self.id in self.tracker.voters:
            return True
        return self._conf_index > self.log.committed and self.id in self._conf_before.voters()

    def _campaign(self, kind: int) -> None:
        if kind == _CAMPAIGN_PRE:
            self._become_pre_candidate()
            msg_type, term = M.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            msg_type, term = M.VOTE, self.term
        self.tracker.record_vote(self.id, True)
        if self.tracker.tally() == VoteResult.WON:
            if kind == _CAMPAIGN_PRE:
                self._campaign(_CAMPAIGN_ELECTION)
            else:
                self._become_leader()
            return
        context = TRANSFER_CONTEXT if kind == _CAMPAIGN_TRANSFER else b""
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for peer in self.tracker.voters:
            if peer != self.id:
                self._send(
                    Message(
                        msg_type,
                        peer,
                        self.id,
                        term,
                        log_term=last_term,
                        index=last_index,
                        context=context,
                    )
                )

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type == M.PRE_VOTE
        can_vote = (
            self.vote == m.frm
            or (self.vote == "" and self.lead == "")
            or (pre and m.term > self.term)
        )
        resp_type = M.PRE_VOTE_RESP if pre else M.VOTE_RESP
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp_type, m.frm, self.id, m.term))
            if not pre:
                self._election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp_type, m.frm, self.id, self.term, reject=True))

    def _on_vote_resp(self, m: Message) -> None:
        self.tracker.record_vote(m.frm, not m.reject)
        result = self.tracker.tally()
        if result == VoteResult.WON:
            if self.role == Role.PRE_CANDIDATE:
                self._campaign(_CAMPAIGN_ELECTION)
            else:
                self._become_leader()
                self._bcast_append()
        elif result == VoteResult.LOST:
            self._become_follower(self.term, "")

    def _on_timeout_now(self, m: Message) -> None:
        if self.lead not in ("", m.frm):
            self.dropped_messages += 1
            return
        if self._promotable():
            self._campaign(_CAMPAIGN_TRANSFER)

    # ------------------------------------------------------------------ role changes
    def _set_role(self, role: Role) -> None:
        roles.check_transition(self.role, role)
        self.role = role

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = ""
            self._snap_in = None
        self.lead = ""
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._reset_timeout()
        self._transferee = ""
        self.tracker.reset(self.log.last_index())
        self._pending_conf_index = self._term_start = 0
        self._lease_forfeited = False
        self._read_only.reset()
        self._reads_waiting_commit = []

    def _reset_timeout(self) -> None:
        lo, hi = self.config.election_ticks
        self._randomized_timeout = self._rng.randrange(lo, hi) if hi > lo else lo

    def _become_follower(self, term: int, lead: str) -> None:
        self._set_role(Role.FOLLOWER)
        self._reset(term)
        self.lead = lead

    def _become_pre_candidate(self) -> None:
        self._set_role(Role.PRE_CANDIDATE)
        self.tracker.votes = {}
        self.lead = ""

    def _become_candidate(self) -> None:
        self._set_role(Role.CANDIDATE)
        self._reset(self.term + 1)
        self.vote = self.id

    def _become_leader(self) -> None:
        self._set_role(Role.LEADER)
        self._reset(self.term)
        self.lead = self.id
        last = self.log.last_index()
        me = self.tracker.progress.get(self.id)
        if me is not None:
            me.maybe_update(last)
            me.become_replicate()
            me.recent_active = True
        # any uncommitted change of an earlier term, and our own no-op, must commit
        # before a new change may be proposed (single-server rule fix)
        self._pending_conf_index = self._term_start = last + 1
        self._append([Entry(self.term, last + 1)])

    # ------------------------------------------------------------------ leader: append
    def _check_can_propose(self) -> None:
        if self.role != Role.LEADER:
            raise NotLeaderError(self.lead, self.term)
        if self._transferee:
            raise TransferInProgressError(
                f"leadership is being transferred to {self._transferee!r}; retry on the new leader"
            )

    def _append(self, entries: list[Entry]) -> None:
        """Leader appends its own entries; replication goes out with the next Ready."""
        log = self.log
        log.append(entries)
        for e in entries:
            if e.type == EntryType.CONF_CHANGE:
                conf = apply_change(self.tracker.conf, decode_conf_change(e.data))
                self._switch_conf(conf, e.index, self.tracker.conf)
        self._pending_bcast = True
        self._update_self_and_commit()

    def _update_self_and_commit(self) -> None:
        me = self.tracker.progress.get(self.id)
        if me is not None:
            me.maybe_update(self.log.last_index())
        self._maybe_commit()

    def _flush(self) -> None:
        """Send what proposals appended since the last Ready, batched per follower."""
        if self._pending_bcast:
            self._pending_bcast = False
            if self.role == Role.LEADER:
                self._update_self_and_commit()
                if self.role == Role.LEADER:
                    self._bcast_append()

    def _bcast_append(self) -> None:
        self._pending_bcast = False
        for peer in self.tracker.peers(self.id):
            sent = self._send_append(peer, True)
            while sent and self.tracker.progress[peer].state == ProgressState.REPLICATE:
                sent = self._send_append(peer, False)  # fill the in-flight window

    def _send_append(self, to: str, send_if_empty: bool) -> bool:
        """Send ``to`` what it is missing (or a snapshot); False if nothing was sent."""
        pr = self.tracker.progress[to]
        if pr.is_paused():
            return False
        log = self.log
        prev = pr.next - 1
        prev_term = log.term(prev)
        if prev_term is None:
            return self._send_snapshot(to, pr)
        last = log.last_index()
        entries: list[Entry] = []
        if pr.next <= last:
            try:
                entries = log.entries_from(pr.next, self.config.max_msg_bytes)
            except CompactedError:
                return self._send_snapshot(to, pr)
        if not entries and not send_if_empty:
            return False
        self._msgs.append(
            Message(
                M.APP,
                to,
                self.id,
                self.term,
                prev_term,
                prev,
                tuple(entries),
                log.committed,
                chunk_offset=self._now,  # send tick, echoed in the answer (lease)
            )
        )
        if pr.state == ProgressState.REPLICATE:
            if entries:
                end = entries[-1].index
                pr.next = end + 1
                pr.inflights.add(end)
        else:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, to: str, pr: Progress) -> bool:
        snap = self.log.snapshot()
        if snap.meta.index == 0:
            return False  # nothing to send yet: the caller has not created a snapshot
        pr.become_snapshot(snap)
        self._send_chunk(to, pr)
        return True

    def _send_chunk(self, to: str, pr: Progress) -> None:
        transfer = pr.transfer
        assert transfer is not None
        snap = transfer.snapshot
        start = transfer.sent_to
        end = min(len(snap.data), start + self.config.snapshot_chunk_bytes)
        transfer.sent_to = end
        transfer.idle_ticks = 0
        self._msgs.append(
            Message(
                M.SNAP,
                to,
                self.id,
                self.term,
                snapshot=Snapshot(snap.meta, snap.data[start:end]),
                chunk_offset=start,
                chunk_done=end >= len(snap.data),
            )
        )

    def _bcast_heartbeat(self, context: bytes) -> None:
        committed = self.log.committed
        for peer in self.tracker.peers(self.id):
            pr = self.tracker.progress[peer]
            self._msgs.append(
                Message(
                    M.HEARTBEAT,
                    peer,
                    self.id,
                    self.term,
                    commit=min(pr.match, committed),
                    context=context,
                    chunk_offset=self._now,  # send tick, echoed in the answer (lease)
                )
            )

    def _maybe_commit(self) -> bool:
        if not self.log.maybe_commit(self.tracker.committed(), self.term):
            return False
        if self._reads_waiting_commit:
            waiting, self._reads_waiting_commit = self._reads_waiting_commit, []
            for request in waiting:
                self._leader_read(request, lease=False)
        if self.id not in self.tracker.voters and self._conf_index <= self.log.committed:
            # our own removal is committed: tell the others, then stop leading; they elect
            self._bcast_append()
            self._become_follower(self.term, "")
        return True

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        base = self.config.election_ticks[0]
        if self._election_elapsed >= base:
            self._election_elapsed = 0
            if self.config.check_quorum:
                self.step(Message(M.CHECK_QUORUM, self.id, self.id))
            if self.role == Role.LEADER and self._transferee:
                self._transferee = ""  # the target did not take over in time
        if self.role != Role.LEADER:
            return
        for peer in self.tracker.peers(self.id):
            pr = self.tracker.progress[peer]
            if pr.transfer is not None:
                pr.transfer.idle_ticks += 1
                if pr.transfer.idle_ticks > base:
                    self._send_snapshot(peer, pr)  # a chunk or its ack was lost: start over
        if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self.step(Message(M.BEAT, self.id, self.id))

    # ------------------------------------------------------------------ leader: responses
    def _heard(self, m: Message) -> Progress:
        """``m`` answers our APP or HEARTBEAT: its sender is alive, and it had not voted
        for anyone else when it got the message, so the lease counts from when we *sent*
        that message (its tick comes back in ``chunk_offset``; 0: none), never from now:
        an answer delayed in the network says nothing about the time since (thesis §6.4.1).
        """
        pr = self.tracker.progress[m.frm]
        pr.recent_active = True
        sent = min(m.chunk_offset, self._now)  # a peer cannot vouch for our future
        if sent > 0 and sent > pr.last_heard:
            pr.last_heard = sent
        return pr

    def _on_app_resp(self, m: Message) -> None:
        pr = self._heard(m)
        if m.reject:
            hint = m.reject_hint
            if m.hint_term > 0:
                hint = self.log.find_conflict_by_term(m.reject_hint, m.hint_term)
            if m.index <= pr.match and self._sent_after_match(m, pr):
                self._restart_lost_peer(m.frm, pr, hint)  # refuses what it acknowledged
            elif pr.maybe_decr_to(m.index, hint):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.frm, True)
            return
        was_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        pr.match_tick = self._now
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT:
            if pr.match >= pr.pending_snapshot or pr.match + 1 >= self.log.first_index():
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            if self.role != Role.LEADER:
                return
            self._bcast_append()
        elif was_paused or pr.state == ProgressState.REPLICATE:
            while self._send_append(m.frm, False):
                pass
        if m.frm == self._transferee and pr.match == self.log.last_index():
            self._send_timeout_now(m.frm)

    def _on_heartbeat_resp(self, m: Message) -> None:
        pr = self._heard(m)
        if m.reject and m.reject_hint < pr.match and self._sent_after_match(m, pr):
            self._restart_lost_peer(m.frm, pr, m.reject_hint)  # its log ends below our commit
        elif pr.state == ProgressState.PROBE:
            pr.probe_sent = False
        if pr.match < self.log.last_index():
            if pr.state == ProgressState.PROBE:
                self._send_append(m.frm, True)
            elif pr.state == ProgressState.REPLICATE:
                if pr.match == pr.heartbeat_match:
                    # no acknowledgement for a whole heartbeat interval: an APP (or its
                    # answer) was lost; probe again from the last known match
                    pr.become_probe()
                    self._send_append(m.frm, True)
                pr.heartbeat_match = pr.match
        if m.context:
            acks = self._read_only.ack(m.frm, m.context)
            if acks is not None and has_quorum(self.tracker.voters, acks):
                for request in self._read_only.release(m.context):
                    self._answer_read(request)

    def _sent_after_match(self, m: Message, pr: Progress) -> bool:
        """Does ``m`` answer a message sent after we learned ``pr.match`` (a later tick)?
        Then a refusal at or below the match is news, not a stale (delayed, duplicated)
        answer: the follower lacks entries it acknowledged, so its data was lost."""
        return pr.state != ProgressState.SNAPSHOT and m.chunk_offset > pr.match_tick

    def _restart_lost_peer(self, peer: str, pr: Progress, last_index: int) -> None:
        """``peer`` lost entries it had acknowledged (a wiped data dir; outside Raft's
        assumptions): forget its match and probe from its log's end. This only re-sends
        entries, and a forgotten match only makes heartbeats carry a lower commit."""
        pr.forget_match(last_index + 1)
        self._send_append(peer, True)

    def _on_snap_resp(self, m: Message) -> None:
        pr = self.tracker.progress[m.frm]
        pr.recent_active = True
        transfer = pr.transfer
        if transfer is None or m.index != transfer.snapshot.meta.index:
            return
        if m.reject:
            transfer.acked = transfer.sent_to = 0  # the follower lost its buffer: start over
            self._send_chunk(m.frm, pr)
        elif transfer.acked < m.chunk_offset <= len(transfer.snapshot.data):
            # acks only move forward, so duplicated acks never double the traffic
            transfer.acked = transfer.sent_to = m.chunk_offset
            self._send_chunk(m.frm, pr)

    def _on_prop(self, m: Message) -> None:
        """Append a follower's forwarded proposals, as ``propose`` would; dropped mid-transfer."""
        try:
            for e in m.entries:
                self.propose(e.data, e.client, e.seq)
        except TransferInProgressError:
            self.dropped_messages += 1

    def _on_read_index(self, m: Message) -> None:
        self._leader_read(ReadRequest(0, m.context, m.frm), lease=False)

    def _on_transfer_leader(self, m: Message) -> None:
        member = self.tracker.conf.get(m.frm)
        if member is None or not member.voter:
            self.dropped_messages += 1
            return
        self._start_transfer(m.frm)

    def _start_transfer(self, to: str) -> None:
        if self._transferee == to:
            return
        self._transferee = to
        self._election_elapsed = 0  # the transfer gets one election timeout
        if self.tracker.progress[to].match == self.log.last_index():
            self._send_timeout_now(to)
        else:
            self._send_append(to, True)

    def _send_timeout_now(self, to: str) -> None:
        # the target may win before we hear of it, and voters let a transfer campaign
        # through their lease: no lease reads for the rest of this term
        self._lease_forfeited = True
        self._send(Message(M.TIMEOUT_NOW, to, self.id, self.term))

    # ------------------------------------------------------------------ reads
    def _committed_in_term(self) -> bool:
        """Has this leader committed its no-op? Until then its commit index may be stale."""
        return self._term_start > 0 and self.log.committed >= self._term_start

    def _leader_read(self, request: ReadRequest, lease: bool) -> None:
        if not self._committed_in_term():
            self._reads_waiting_commit.append(request)  # commit index may still be stale
            return
        request = request._replace(commit=self.log.committed)
        if self.tracker.voters == (self.id,) or (lease and self.lease_valid()):
            self._answer_read(request)
            return
        key = self._read_only.add(request, self.id)
        self._bcast_heartbeat(key)

    def _answer_read(self, request: ReadRequest) -> None:
        if request.frm == self.id:
            self._read_states.append(ReadState(request.commit, request.context))
        else:
            self._send(
                Message(
                    M.READ_INDEX_RESP,
                    request.frm,
                    self.id,
                    self.term,
                    index=request.commit,
                    context=request.context,
                )
            )

    def _on_read_index_resp(self, m: Message) -> None:
        self._read_states.append(ReadState(m.index, m.context))

    # ------------------------------------------------------------------ follower
    def _from_leader(self, m: Message) -> None:
        if self.role != Role.FOLLOWER:
            self._become_follower(self.term, m.frm)
        self._election_elapsed = 0
        self.lead = m.frm

    def _on_app(self, m: Message) -> None:
        self._from_leader(m)
        self._leader_commit = max(self._leader_commit, m.commit)
        log = self.log
        if m.index < log.committed:
            self._send(
                Message(
                    M.APP_RESP,
                    m.frm,
                    self.id,
                    self.term,
                    index=log.committed,
                    chunk_offset=m.chunk_offset,
                )
            )
            return
        result = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if result is not None:
            last_new, conflict = result
            if m.entries:
                self._after_follower_append(m.entries, conflict)
            self._send(
                Message(
                    M.APP_RESP,
                    m.frm,
                    self.id,
                    self.term,
                    index=last_new,
                    chunk_offset=m.chunk_offset,
                )
            )
            return
        hint = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
        self._send(
            Message(
                M.APP_RESP,
                m.frm,
                self.id,
                self.term,
                index=m.index,
                reject=True,
                reject_hint=hint,
                hint_term=log.term(hint) or 0,
                chunk_offset=m.chunk_offset,
            )
        )

    def _after_follower_append(self, entries: tuple[Entry, ...], conflict: int) -> None:
        if conflict and conflict <= self._conf_index:
            self._recompute_conf()  # the entry that set our configuration was truncated
            return
        for e in entries:
            if e.type == EntryType.CONF_CHANGE and e.index > self._conf_index:
                try:
                    conf = apply_change(self.tracker.conf, decode_conf_change(e.data))
                except InvalidConfChangeError:
                    continue  # the leader's log disagrees with ours about membership: skip it
                self._switch_conf(conf, e.index, self.tracker.conf)

    def _on_heartbeat(self, m: Message) -> None:
        self._from_leader(m)
        log = self.log
        log.commit_to(m.commit)
        self._leader_commit = max(self._leader_commit, m.commit)
        last = log.last_index()
        # the leader only sends commits we acknowledged having: a shorter log means our
        # data was lost; say where it ends so the leader re-sends the rest
        lost = m.commit > last
        self._send(
            Message(
                M.HEARTBEAT_RESP,
                m.frm,
                self.id,
                self.term,
                context=m.context,
                reject=lost,
                reject_hint=last if lost else 0,
                chunk_offset=m.chunk_offset,
            )
        )

    def _on_snap(self, m: Message) -> None:
        self._from_leader(m)
        assert m.snapshot is not None
        chunk = m.snapshot
        meta = chunk.meta
        pending = self._snap_in
        if pending is None or pending[0] != meta:
            if m.chunk_offset != 0:
                self._send(
                    Message(M.SNAP_RESP, m.frm, self.id, self.term, index=meta.index, reject=True)
                )
                return
            if meta.index <= self.log.committed:
                self._snap_in = None
                self._send(Message(M.APP_RESP, m.frm, self.id, self.term, index=self.log.committed))
                return
            pending = self._snap_in = (meta, bytearray())
        buffer = pending[1]
        if m.chunk_offset != len(buffer):
            # a duplicate, a restart, or a gap: tell the leader where we are
            self._send(
                Message(
                    M.SNAP_RESP,
                    m.frm,
                    self.id,
                    self.term,
                    index=meta.index,
                    chunk_offset=len(buffer),
                    reject=m.chunk_offset > len(buffer),
                )
            )
            return
        buffer += chunk.data
        if not m.chunk_done:
            self._send(
                Message(
                    M.SNAP_RESP,
                    m.frm,
                    self.id,
                    self.term,
                    index=meta.index,
                    chunk_offset=len(buffer),
                )
            )
            return
        self._snap_in = None
        self._install_snapshot(Snapshot(meta, bytes(buffer)))
        self._send(Message(M.APP_RESP, m.frm, self.id, self.term, index=self.log.last_index()))

    def _install_snapshot(self, snap: Snapshot) -> None:
        log = self.log
        meta = snap.meta
        if meta.index <= log.committed:
            return
        if log.match_term(meta.index, meta.term):
            log.commit_to(meta.index)  # we already hold this prefix: just fast-forward
            return
        log.restore(snap)
        self._switch_conf(meta.conf, meta.index, meta.conf)

    # ------------------------------------------------------------------ configuration
    def _switch_conf(self, conf: ConfState, index: int, before: ConfState) -> None:
        self._conf_index, self._conf_before = index, before
        self.tracker.set_conf(conf, self.log.last_index())
        if self._transferee and self._transferee not in self.tracker.voters:
            self._transferee = ""

    def _recompute_conf(self) -> None:
        """Configuration = the snapshot's, then every change in the log after it."""
        snap = self.log.snapshot()
        conf = before = snap.meta.conf
        conf_index = snap.meta.index
        lo = max(snap.meta.index + 1, self.log.first_index())
        for e in self.log.slice(lo, self.log.last_index() + 1, 1 << 62):
            if e.type == EntryType.CONF_CHANGE:
                try:
                    conf, before = apply_change(conf, decode_conf_change(e.data)), conf
                except (ValueError, InvalidConfChangeError):
                    continue  # cannot happen for entries we validated on append
                conf_index = e.index
        self._switch_conf(conf, conf_index, before)

    # ------------------------------------------------------------------ helpers
    def _send(self, m: Message) -> None:
        self._msgs.append(m)

    def _reported_role(self) -> Role:
        if self.role == Role.FOLLOWER and not self._promotable():
            return Role.LEARNER
        return self.role

    def _soft_state(self) -> SoftState:
        return SoftState(self.lead, self._reported_role())

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)


_LOCAL_HANDLERS = {
    M.HUP: RawNode._on_hup,
    M.BEAT: RawNode._on_beat,
    M.CHECK_QUORUM: RawNode._on_check_quorum,
    M.UNREACHABLE: RawNode._on_unreachable,
    M.SNAP_STATUS: RawNode._on_snap_status,
}

_SELF_EVENTS = frozenset({M.HUP, M.BEAT, M.CHECK_QUORUM})

_PEER_HANDLERS = {
    M.APP: RawNode._on_app,
    M.HEARTBEAT: RawNode._on_heartbeat,
    M.SNAP: RawNode._on_snap,
    M.TIMEOUT_NOW: RawNode._on_timeout_now,
    M.READ_INDEX_RESP: RawNode._on_read_index_resp,
    M.VOTE_RESP: RawNode._on_vote_resp,
    M.PRE_VOTE_RESP: RawNode._on_vote_resp,
    M.APP_RESP: RawNode._on_app_resp,
    M.HEARTBEAT_RESP: RawNode._on_heartbeat_resp,
    M.SNAP_RESP: RawNode._on_snap_resp,
    M.READ_INDEX: RawNode._on_read_index,
    M.PROP: RawNode._on_prop,
    M.TRANSFER_LEADER: RawNode._on_transfer_leader,
}
