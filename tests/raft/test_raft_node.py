"""Step-level tests of ``RawNode``: one rule per test, messages fed by hand."""

from __future__ import annotations

import random

import pytest
from raft_env import Cluster

from raftpod_sidecar.raft.confchange import encode_conf_change
from raftpod_sidecar.raft.errors import (
    ConfChangePendingError,
    InvalidConfChangeError,
    InvalidTransferError,
    NotLeaderError,
    TransferInProgressError,
)
from raftpod_sidecar.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Member,
    Message,
    MessageType,
    Role,
    Snapshot,
    SnapshotMeta,
)
from raftpod_sidecar.raft.node import TRANSFER_CONTEXT, Config, RawNode
from raftpod_sidecar.raft.progress import ProgressState
from raftpod_sidecar.raft.readonly import ReadOnly, ReadRequest
from raftpod_sidecar.raft.roles import IllegalTransitionError, check_transition
from raftpod_sidecar.raft.storage import MemoryStorage

M = MessageType


def conf_of(voters: list[str], learners: list[str] | None = None) -> ConfState:
    members = [Member(v, f"{v}:7000", True) for v in voters]
    members += [Member(v, f"{v}:7000", False) for v in learners or []]
    return ConfState(tuple(sorted(members)))


def make_node(
    nid: str = "n1",
    *,
    voters: tuple[str, ...] = ("n1", "n2", "n3"),
    learners: tuple[str, ...] = (),
    terms: tuple[int, ...] = (),
    term: int = 0,
    commit: int = 0,
    **cfg: object,
) -> RawNode:
    """A node whose log is a bootstrap snapshot at 1/1 followed by entries of ``terms``."""
    storage = MemoryStorage()
    storage.apply_snapshot(Snapshot(SnapshotMeta(1, 1, conf_of(list(voters), list(learners)))))
    storage.append([Entry(t, i + 2) for i, t in enumerate(terms)])
    last_term = terms[-1] if terms else 1
    storage.set_hard_state(HardState(max(term, last_term), "", max(commit, 1)))
    options: dict[str, object] = {"election_ticks": (10, 20), "heartbeat_ticks": 2}
    options.update(cfg)
    return RawNode(Config(id=nid, **options), storage, random.Random(7))  # type: ignore[arg-type]


def drain(node: RawNode) -> list[Message]:
    """Handle the node's Ready the way a caller would (storage writes included)."""
    msgs: list[Message] = []
    for _ in range(10):
        if not node.has_ready():
            break
        rd = node.ready()
        storage = node.log.storage
        assert isinstance(storage, MemoryStorage)
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        msgs.extend(rd.messages)
        node.advance(rd)
    return msgs


def elect(node: RawNode) -> None:
    """Make a 3-voter ``node`` leader with n2's vote (pre-vote must be off)."""
    node.campaign()
    node.step(Message(M.VOTE_RESP, node.id, "n2", node.term))
    assert node.role == Role.LEADER


def answer_app(node: RawNode, app: Message) -> None:
    """The follower ``app`` went to acknowledges it, echoing its send tick (as cores do)."""
    last = app.index + len(app.entries)
    node.step(
        Message(M.APP_RESP, node.id, app.to, node.term, index=last, chunk_offset=app.chunk_offset)
    )


def elect_with_lease(node: RawNode) -> None:
    """``elect``, then n2 acknowledges the no-op: it commits and the lease starts."""
    elect(node)
    (app,) = [m for m in drain(node) if m.type == M.APP and m.to == "n2"]
    answer_app(node, app)
    assert node.lease_valid()


# ---------------------------------------------------------------------------- config & roles
def test_config_rejects_bad_intervals() -> None:
    with pytest.raises(ValueError):
        Config(id="n1", election_ticks=(5, 10), heartbeat_ticks=5)
    with pytest.raises(ValueError):
        Config(id="n1", election_ticks=(10, 5))
    with pytest.raises(ValueError):
        Config(id="")


def test_role_table_forbids_leader_to_candidate() -> None:
    check_transition(Role.CANDIDATE, Role.LEADER)
    with pytest.raises(IllegalTransitionError):
        check_transition(Role.LEADER, Role.CANDIDATE)
    with pytest.raises(IllegalTransitionError):
        check_transition(Role.FOLLOWER, Role.LEADER)


# ---------------------------------------------------------------------------- elections
def test_election_timeout_is_randomized_within_range() -> None:
    seen = set()
    for seed in range(20):
        storage = MemoryStorage()
        storage.apply_snapshot(Snapshot(SnapshotMeta(1, 1, conf_of(["n1", "n2"]))))
        cfg = Config(id="n1", election_ticks=(10, 20), heartbeat_ticks=2, pre_vote=False)
        node = RawNode(cfg, storage, random.Random(seed))
        ticks = 0
        while node.role == Role.FOLLOWER and ticks < 100:
            node.tick()
            ticks += 1
        assert 10 <= ticks < 20
        seen.add(ticks)
    assert len(seen) > 3


def test_single_voter_becomes_leader_and_commits_noop() -> None:
    node = make_node(voters=("n1",))
    node.campaign()
    assert node.role == Role.LEADER
    rd = node.ready()
    assert rd.entries == (Entry(2, 2),)  # the empty NORMAL no-op of term 2
    assert rd.committed_entries == (Entry(2, 2),)


def test_pre_vote_does_not_change_term_or_vote() -> None:
    node = make_node(term=3, terms=(3,))
    node.campaign()
    assert node.role == Role.PRE_CANDIDATE
    assert (node.term, node.vote) == (3, "")
    msgs = drain(node)
    assert {(m.type, m.term, m.to) for m in msgs} == {(M.PRE_VOTE, 4, "n2"), (M.PRE_VOTE, 4, "n3")}
    node.step(Message(M.PRE_VOTE_RESP, "n1", "n2", 4))
    assert node.role == Role.CANDIDATE and node.term == 4 and node.vote == "n1"


def test_pre_vote_rejected_by_majority_returns_to_follower() -> None:
    node = make_node(term=3, terms=(3,))
    node.campaign()
    node.step(Message(M.PRE_VOTE_RESP, "n1", "n2", 3, reject=True))
    node.step(Message(M.PRE_VOTE_RESP, "n1", "n3", 3, reject=True))
    assert node.role == Role.FOLLOWER and node.term == 3


def test_votes_once_per_term() -> None:
    node = make_node(term=1, check_quorum=False)
    node.step(Message(M.VOTE, "n1", "n2", 2, log_term=1, index=1))
    node.step(Message(M.VOTE, "n1", "n3", 2, log_term=1, index=1))
    node.step(Message(M.VOTE, "n1", "n2", 2, log_term=1, index=1))  # a retry is granted again
    replies = [m for m in drain(node) if m.type == M.VOTE_RESP]
    assert [(m.to, m.reject) for m in replies] == [("n2", False), ("n3", True), ("n2", False)]
    assert node.vote == "n2"
    assert node.log.storage.initial_state()[0].vote == "n2"  # persisted before the answer left


@pytest.mark.parametrize(
    ("log_term", "index", "granted"),
    [(3, 3, True), (3, 9, True), (4, 1, True), (3, 2, False), (2, 9, False)],
)
def test_votes_only_for_up_to_date_logs(log_term: int, index: int, granted: bool) -> None:
    node = make_node(terms=(2, 3), term=3, check_quorum=False)  # last entry 3/3
    node.step(Message(M.VOTE, "n1", "n2", 5, log_term=log_term, index=index))
    (reply,) = [m for m in drain(node) if m.type == M.VOTE_RESP]
    assert reply.reject is not granted


def test_in_lease_vote_requests_are_ignored_unless_transfer() -> None:
    node = make_node(term=1, check_quorum=True)
    node.step(Message(M.HEARTBEAT, "n1", "n2", 1))  # n2 is our leader
    drain(node)
    node.step(Message(M.VOTE, "n1", "n3", 2, log_term=1, index=1))
    node.step(Message(M.PRE_VOTE, "n1", "n3", 2, log_term=1, index=1))
    assert node.term == 1 and drain(node) == []
    node.step(Message(M.VOTE, "n1", "n3", 2, log_term=1, index=1, context=TRANSFER_CONTEXT))
    assert node.term == 2 and node.vote == "n3"


def test_vote_after_lease_expired_is_considered() -> None:
    node = make_node(term=1, check_quorum=True, pre_vote=True)
    node.step(Message(M.HEARTBEAT, "n1", "n2", 1))
    for _ in range(10):
        node.tick()  # 10 ticks: out of lease (but under the randomized timeout of >= 10?)
    if node.role != Role.FOLLOWER:
        drain(node)
    node.step(Message(M.VOTE, "n1", "n3", 5, log_term=1, index=1))
    assert node.term == 5


def test_stale_leader_is_told_the_new_term() -> None:
    node = make_node(term=5, terms=(5,))
    node.step(Message(M.APP, "n1", "n2", 3, log_term=1, index=1))
    (reply,) = drain(node)
    assert (reply.type, reply.term, reply.to) == (M.APP_RESP, 5, "n2")
    assert node.dropped_messages == 0


def test_candidate_becomes_follower_on_append_from_leader_of_its_term() -> None:
    node = make_node(pre_vote=False)
    node.campaign()
    node.step(Message(M.APP, "n1", "n2", node.term, log_term=1, index=1))
    assert node.role == Role.FOLLOWER and node.lead == "n2"


def test_learner_and_non_member_never_campaign() -> None:
    learner = make_node("n4", learners=("n4",))
    stranger = make_node("n9")
    for node in (learner, stranger):
        for _ in range(100):
            node.tick()
        node.campaign()
        assert node.role == Role.FOLLOWER and node.term == 1
        assert node.status().role == Role.LEARNER


def test_learner_answers_vote_requests() -> None:
    # it may already be a voter in the candidate's (newer) configuration
    learner = make_node("n4", learners=("n4",), check_quorum=False)
    learner.step(Message(M.VOTE, "n4", "n1", 2, log_term=1, index=1))
    (reply,) = [m for m in drain(learner) if m.type == M.VOTE_RESP]
    assert not reply.reject


def test_check_quorum_leader_steps_down_without_majority() -> None:
    node = make_node(pre_vote=False, check_quorum=True)
    elect(node)
    drain(node)
    for _ in range(10):  # an election timeout in which nobody answered
        node.tick()
    assert node.role == Role.FOLLOWER and node.lead == ""


def test_check_quorum_leader_stays_with_majority() -> None:
    node = make_node(pre_vote=False, check_quorum=True)
    elect(node)
    for _ in range(50):
        node.tick()
        node.step(Message(M.HEARTBEAT_RESP, "n1", "n2", node.term))
    assert node.role == Role.LEADER


# ---------------------------------------------------------------------------- replication
FIG7_LEADER = (1, 1, 4, 4, 5, 5, 6, 6, 6)  # indexes 2..10; index 1 is the bootstrap (term 1)
FIG7_FOLLOWERS = {
    "a": (1, 1, 4, 4, 5, 5, 6, 6),
    "b": (1, 1, 4),
    "c": (1, 1, 4, 4, 5, 5, 6, 6, 6, 6),
    "d": (1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7),
    "e": (1, 1, 4, 4, 4, 4),
    "f": (1, 1, 2, 2, 2, 3, 3, 3, 3, 3),
}


@pytest.mark.parametrize("case", sorted(FIG7_FOLLOWERS))
def test_figure7_follower_logs_converge(case: str) -> None:
    """Raft paper Figure 7: whatever the follower holds, it ends with the leader's log."""
    leader = make_node("n1", voters=("n1",), learners=("n2",), terms=FIG7_LEADER, term=7)
    follower_terms = FIG7_FOLLOWERS[case]
    follower = make_node("n2", voters=("n1",), learners=("n2",), terms=follower_terms)
    leader.campaign()
    assert leader.role == Role.LEADER and leader.term == 8
    rejections = 0
    for _ in range(20):
        to_follower = drain(leader)
        if not to_follower:
            break
        for m in to_follower:
            follower.step(m)
        for m in drain(follower):
            rejections += m.reject
            leader.step(m)
    want = leader.log.slice(2, leader.log.last_index() + 1, 1 << 30)
    got = follower.log.slice(2, follower.log.last_index() + 1, 1 << 30)
    assert got == want
    assert follower.log.committed == leader.log.committed == 11
    assert rejections <= 2  # conflict hints skip whole terms


def test_figure8_old_term_entry_not_committed_by_counting() -> None:
    """Raft paper Figure 8: an entry of an older term on a majority is not yet committed."""
    node = make_node(terms=(2,), term=3, pre_vote=False)  # 2/2 uncommitted, from term 2
    elect(node)  # term 4, appends its no-op at 3
    assert node.term == 4 and node.log.last_index() == 3
    node.step(Message(M.APP_RESP, "n1", "n2", 4, index=2))  # n1 + n2 hold 2/2: a majority
    assert node.log.committed == 1
    node.step(Message(M.APP_RESP, "n1", "n2", 4, index=3))  # the term-4 entry: commits both
    assert node.log.committed == 3


def test_leader_appends_noop_on_election() -> None:
    node = make_node(pre_vote=False)
    elect(node)
    assert node.log.slice(2, 3, 1 << 20) == [Entry(node.term, 2, EntryType.NORMAL, b"")]


def test_appends_are_batched_within_max_msg_bytes() -> None:
    node = make_node(pre_vote=False, max_msg_bytes=400)
    elect(node)
    node.step(Message(M.APP_RESP, "n1", "n2", node.term, index=2))  # n2 -> replicate
    drain(node)
    for i in range(10):
        node.propose(bytes([65 + i]) * 100)
    apps = [m for m in drain(node) if m.type == M.APP and m.to == "n2"]
    assert sum(len(m.entries) for m in apps) == 10
    assert all(1 <= len(m.entries) <= 3 for m in apps)  # 124 bytes each counted, 400 max
    assert len(apps) == 4


def test_inflight_window_limits_pipelining() -> None:
    node = make_node(pre_vote=False, max_inflight=2)
    elect(node)
    node.step(Message(M.APP_RESP, "n1", "n2", node.term, index=2))
    drain(node)
    sent = []
    for i in range(5):
        node.propose(b"x%d" % i)
        sent += [m for m in drain(node) if m.type == M.APP and m.to == "n2"]
    assert len(sent) == 2  # window full; the rest waits for acknowledgements
    node.step(Message(M.APP_RESP, "n1", "n2", node.term, index=sent[0].entries[-1].index))
    more = [m for m in drain(node) if m.type == M.APP and m.to == "n2"]
    assert len(more) == 1 and more[0].entries[-1].index == node.log.last_index()


def test_probe_state_sends_one_append_until_answered() -> None:
    node = make_node(pre_vote=False)
    elect(node)
    drain(node)
    node.propose(b"a")
    node.propose(b"b")
    assert [m for m in drain(node) if m.to == "n3"] == []  # n3 is probing: one APP out
    assert node.status().progress["n3"].state == ProgressState.PROBE


def test_follower_rejects_with_conflict_hint() -> None:
    node = make_node("n2", terms=(1, 2, 2, 2), term=2)  # 2..5: 1 2 2 2
    node.step(Message(M.APP, "n2", "n1", 3, log_term=3, index=7))
    (reply,) = drain(node)
    assert reply.reject and reply.index == 7
    assert (reply.reject_hint, reply.hint_term) == (5, 2)
    node.step(Message(M.APP, "n2", "n1", 3, log_term=3, index=4))  # 4 holds term 2 < 3
    (reply,) = drain(node)
    assert (reply.reject_hint, reply.hint_term) == (4, 2)


def test_stalled_replication_recovers_from_lost_tail() -> None:
    c = Cluster(seed=3)
    c.add_nodes(3)
    c.peers["n1"].node.campaign()
    c.stabilize(log=False)
    c.peers["n1"].node.propose(b"lost")
    c.process_ready("n1", log=False)
    c.inflight = [m for m in c.inflight if m.to != "n3"]  # the only APP to n3 is lost
    c.stabilize(log=False)
    for _ in range(30):
        c.tick("n1", 1)
        c.stabilize(log=False)
    assert c.peers["n3"].applied == [b"lost"]


@pytest.mark.parametrize("busy", [False, True], ids=["idle-leader", "busy-leader"])
def test_follower_with_wiped_data_is_caught_up_again(busy: bool) -> None:
    c = Cluster(seed=3)
    c.add_nodes(3)
    c.peers["n1"].node.campaign()
    c.stabilize(log=False)
    for i in range(5):
        c.peers["n1"].node.propose(b"w%d" % i)
    c.stabilize(log=False)
    leader = c.peers["n1"].node
    assert leader.status().progress["n3"].match == 7
    c.tick("n1", 1)  # some time passes before n3 comes back
    c.wipe("n3")  # same id and peers, storage back to the bootstrap snapshot
    if busy:
        leader.propose(b"more")  # an APP after n3's match: refused
    else:
        c.tick("n1", c.peers["n1"].config.heartbeat_ticks)  # a heartbeat with commit 7
    c.process_ready("n1", log=False)
    c.deliver("n3", log=False)
    st = c.peers["n3"].node.status()
    # the leader's commit is beyond its log: the runtime can tell it is behind
    assert (st.last_index, st.leader, st.leader_commit) == (1, "n1", 7)
    for _ in range(20):
        c.stabilize(log=False)
        if c.peers["n3"].applied_index == leader.log.committed:
            break
        c.tick("n1", 1)
    assert c.peers["n3"].applied == c.peers["n1"].applied
    assert c.peers["n3"].applied_index == leader.log.committed == (8 if busy else 7)
    assert leader.status().progress["n3"].match == leader.log.committed


# ---------------------------------------------------------------------------- snapshots
def lagging_cluster(chunk: int) -> Cluster:
    c = Cluster(seed=5, snapshot_chunk_bytes=chunk)
    c.add_nodes(3)
    c.peers["n1"].node.campaign()
    c.stabilize(log=False)
    c.isolated = {"n3"}
    for i in range(6):
        c.peers["n1"].node.propose(b"value-%d" % i)
    c.stabilize(log=False)
    c.run_command(f"compact 1 {c.peers['n1'].applied_index}")
    c.isolated = set()
    return c


def rounds(c: Cluster, until: object = None, limit: int = 60) -> list[Message]:
    """Handle every Ready then deliver everything, until quiet; returns all messages sent."""
    sent: list[Message] = []
    for _ in range(limit):
        for nid in sorted(c.peers):
            c.process_ready(nid, log=False)
        sent += c.inflight
        if callable(until) and until(c):
            break
        if not c.deliver(log=False):
            break
    return sent


def test_snapshot_is_sent_in_chunks_and_installed() -> None:
    c = lagging_cluster(chunk=10)
    sent: list[Message] = []
    for _ in range(15):  # heartbeats reveal that n3 lags; its log is gone: snapshot
        c.tick("n1", 1)
        sent += rounds(c)
    chunks = [m for m in sent if m.type == M.SNAP]
    data = c.peers["n1"].storage.snapshot().data
    assert len(chunks) == -(-len(data) // 10)
    assert all(m.snapshot is not None and len(m.snapshot.data) <= 10 for m in chunks)
    assert [m.chunk_done for m in chunks] == [False] * (len(chunks) - 1) + [True]
    c.stabilize(log=False)
    n3 = c.peers["n3"]
    assert n3.applied == c.peers["n1"].applied
    assert n3.storage.snapshot().meta.index == c.peers["n1"].storage.snapshot().meta.index
    c.peers["n1"].node.propose(b"after")
    c.stabilize(log=False)
    assert n3.applied[-1] == b"after"
    assert c.peers["n1"].node.status().progress["n3"].state == ProgressState.REPLICATE


def test_lost_chunk_restarts_transfer_after_timeout() -> None:
    c = lagging_cluster(chunk=8)
    c.tick("n1", 10)
    for _ in range(6):
        c.process_ready("n1", log=False)
        c.deliver("n3", log=False)
        c.process_ready("n3", log=False)
        c.deliver("n1", log=False)
    c.process_ready("n1", log=False)
    c.inflight = [m for m in c.inflight if m.type != M.SNAP]  # a chunk is lost
    c.stabilize(log=False)
    assert c.peers["n3"].applied_index < c.peers["n1"].applied_index
    for _ in range(40):
        c.tick("n1", 1)
        c.stabilize(log=False)
    assert c.peers["n3"].applied == c.peers["n1"].applied


def test_follower_reacks_duplicate_chunk_and_rejects_gap() -> None:
    node = make_node("n2", term=1)
    meta = SnapshotMeta(9, 1, conf_of(["n1", "n2", "n3"]))
    node.step(Message(M.SNAP, "n2", "n1", 1, snapshot=Snapshot(meta, b"abcd"), chunk_offset=0))
    node.step(Message(M.SNAP, "n2", "n1", 1, snapshot=Snapshot(meta, b"abcd"), chunk_offset=0))
    node.step(Message(M.SNAP, "n2", "n1", 1, snapshot=Snapshot(meta, b"zz"), chunk_offset=9))
    replies = drain(node)
    assert [(m.type, m.chunk_offset, m.reject) for m in replies] == [
        (M.SNAP_RESP, 4, False),
        (M.SNAP_RESP, 4, False),
        (M.SNAP_RESP, 4, True),
    ]
    node.step(
        Message(
            M.SNAP,
            "n2",
            "n1",
            1,
            snapshot=Snapshot(meta, b"ef"),
            chunk_offset=4,
            chunk_done=True,
        )
    )
    rd = node.ready()
    assert rd.snapshot == Snapshot(meta, b"abcdef")
    assert rd.messages[-1].type == M.APP_RESP and rd.messages[-1].index == 9
    node.advance(rd)
    assert node.log.committed == 9 and node.log.applied == 9


def test_report_snapshot_failure_goes_back_to_probe() -> None:
    c = lagging_cluster(chunk=1 << 20)
    for _ in range(15):
        c.tick("n1", 1)
        rounds(c, until=lambda c: any(m.type == M.SNAP for m in c.inflight))
        if any(m.type == M.SNAP for m in c.inflight):
            break
    leader = c.peers["n1"].node
    assert leader.status().progress["n3"].state == ProgressState.SNAPSHOT
    leader.report_snapshot("n3", ok=False)
    assert leader.status().progress["n3"].state == ProgressState.PROBE
    leader.report_unreachable("n2")
    assert leader.status().progress["n2"].state == ProgressState.PROBE


# ---------------------------------------------------------------------------- leadership transfer
def test_transfer_errors() -> None:
    node = make_node(learners=("n4",), pre_vote=False)
    with pytest.raises(NotLeaderError):
        node.transfer_leadership("n2")
    elect(node)
    for target in ("n1", "n4", "n9"):
        with pytest.raises(InvalidTransferError):
            node.transfer_leadership(target)


def test_transfer_catches_up_then_timeout_now_and_refuses_proposals() -> None:
    node = make_node(pre_vote=False)
    elect(node)
    node.step(Message(M.APP_RESP, "n1", "n2", node.term, index=2))
    node.propose(b"x")  # n2 lags by this entry
    drain(node)
    node.transfer_leadership("n2")
    with pytest.raises(TransferInProgressError):
        node.propose(b"y")
    msgs = drain(node)
    assert [m.type for m in msgs if m.to == "n2"] == [M.APP]  # not caught up yet
    node.step(Message(M.APP_RESP, "n1", "n2", node.term, index=3))
    assert [m.type for m in drain(node) if m.to == "n2"][-1] == M.TIMEOUT_NOW


def test_transfer_aborts_after_election_timeout() -> None:
    node = make_node(pre_vote=False, check_quorum=False)
    elect(node)
    node.transfer_leadership("n3")
    for _ in range(10):
        node.tick()
    assert node.status().transferee == ""
    node.propose(b"ok")


def test_timeout_now_campaigns_immediately_with_transfer_context() -> None:
    node = make_node("n2", term=1)
    node.step(Message(M.HEARTBEAT, "n2", "n1", 1))
    node.step(Message(M.TIMEOUT_NOW, "n2", "n1", 1))
    assert node.role == Role.CANDIDATE and node.term == 2
    votes = [m for m in drain(node) if m.type == M.VOTE]
    assert {m.context for m in votes} == {TRANSFER_CONTEXT}


# ---------------------------------------------------------------------------- reads
def test_read_index_waits_for_commit_in_term_then_heartbeat_quorum() -> None:
    node = make_node(pre_vote=False)
    elect(node)
    node.read_index(b"r")
    assert node.ready().read_states == ()
    node.step(Message(M.APP_RESP, "n1", "n2", node.term, index=2))  # no-op commits
    beats = [m for m in node.ready().messages if m.type == M.HEARTBEAT and m.context]
    assert {m.to for m in beats} == {"n2", "n3"}
    node.step(Message(M.HEARTBEAT_RESP, "n1", "n3", node.term, context=beats[0].context))
    rd = node.ready()
    assert [(r.index, r.context) for r in rd.read_states] == [(2, b"r")]


def test_lease_read_needs_check_quorum() -> None:
    for check_quorum, immediate in ((True, True), (False, False)):
        node = make_node(pre_vote=False, check_quorum=check_quorum)
        elect(node)
        (app,) = [m for m in drain(node) if m.type == M.APP and m.to == "n2"]
        answer_app(node, app)
        drain(node)
        node.read_index(b"l", lease=True)
        assert bool(node.ready().read_states) is immediate
        assert node.status().lease_valid is immediate


def test_a_restarted_node_keeps_its_lease_promise_for_an_election_timeout() -> None:
    def vote(node: RawNode, context: bytes = b"") -> list[Message]:
        node.step(
            Message(M.VOTE, node.id, "n3", node.term + 1, log_term=1, index=1, context=context)
        )
        return [m for m in drain(node) if m.type == M.VOTE_RESP]

    restarted = make_node("n2", term=1, check_quorum=True)  # it has a term: it ran before
    assert vote(restarted) == [], "voted while a lease it acknowledged may still count"
    assert len(vote(restarted, TRANSFER_CONTEXT)) == 1, "a transfer is not held back"
    later = make_node("n2", term=1, check_quorum=True)
    for _ in range(later.config.election_ticks[0]):
        later.tick()
    assert [m.reject for m in vote(later)] == [False]
    without_leases = make_node("n2", term=1, check_quorum=False)
    assert [m.reject for m in vote(without_leases)] == [False]


def test_lease_expires_without_acks() -> None:
    node = make_node(pre_vote=False, check_quorum=True)
    elect_with_lease(node)
    for _ in range(node.config.lease_ticks + 1):
        node.tick()
    assert not node.lease_valid()


def test_lease_counts_from_send_not_from_delayed_answer() -> None:
    node = make_node(pre_vote=False, check_quorum=True)
    elect_with_lease(node)
    for _ in range(node.config.heartbeat_ticks):
        node.tick()
    (late,) = [m for m in drain(node) if m.type == M.HEARTBEAT and m.to == "n2"]
    for _ in range(node.config.lease_ticks + 1):
        node.tick()  # the heartbeat sits in the network; meanwhile n2 may vote elsewhere
    assert node.role == Role.LEADER and not node.lease_valid()
    answer = Message(M.HEARTBEAT_RESP, "n1", "n2", node.term, chunk_offset=late.chunk_offset)
    node.step(answer)
    assert not node.lease_valid()  # it arrived now, but vouches only for the send
    node.step(answer._replace(chunk_offset=0))  # an answer without a send tick: no lease
    assert not node.lease_valid()
    fresh = [m for m in drain(node) if m.type == M.HEARTBEAT and m.to == "n2"][-1]
    node.step(answer._replace(chunk_offset=fresh.chunk_offset))
    assert node.lease_valid()


def test_follower_forwards_read_index_and_errors_without_leader() -> None:
    node = make_node("n2", term=1)
    with pytest.raises(NotLeaderError):
        node.read_index(b"x")
    node.step(Message(M.HEARTBEAT, "n2", "n1", 1))
    drain(node)
    node.read_index(b"x")
    (fwd,) = drain(node)
    assert (fwd.type, fwd.to, fwd.context) == (M.READ_INDEX, "n1", b"x")
    node.step(Message(M.READ_INDEX_RESP, "n2", "n1", 1, index=7, context=b"x"))
    assert [(r.index, r.context) for r in node.ready().read_states] == [(7, b"x")]


def test_read_never_older_than_commit_at_start() -> None:
    c = Cluster(seed=11)
    c.add_nodes(3)
    c.peers["n1"].node.campaign()
    c.stabilize(log=False)
    for i in range(5):
        c.peers["n1"].node.propose(b"w%d" % i)
        c.stabilize(log=False)
        commit = c.peers["n1"].node.log.committed
        c.peers["n2"].node.read_index(b"r%d" % i)
        c.stabilize(log=False)
        (read,) = c.peers["n2"].reads
        c.peers["n2"].reads.clear()
        assert read.index >= commit


# ---------------------------------------------------------------------------- membership
def test_conf_change_rules() -> None:
    node = make_node(pre_vote=False)
    with pytest.raises(NotLeaderError):
        node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "n4", "a"))
    elect(node)
    # the Ongaro fix: nothing before this term's no-op commits
    with pytest.raises(ConfChangePendingError):
        node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "n4", "a"))
    node.step(Message(M.APP_RESP, "n1", "n2", node.term, index=2))
    with pytest.raises(InvalidConfChangeError):
        node.propose_conf_change(ConfChange(ConfChangeType.PROMOTE, "n2"))
    index, _ = node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "n4", "n4:1"))
    assert node.status().conf.get("n4") == Member("n4", "n4:1", False)  # in effect on append
    with pytest.raises(ConfChangePendingError):
        node.propose_conf_change(ConfChange(ConfChangeType.PROMOTE, "n4"))
    node.step(Message(M.APP_RESP, "n1", "n2", node.term, index=index))
    node.propose_conf_change(ConfChange(ConfChangeType.PROMOTE, "n4"))
    assert "n4" in node.status().conf.voters()


def test_learner_not_counted_in_quorum() -> None:
    node = make_node(voters=("n1", "n2", "n3"), learners=("n4",), pre_vote=False)
    elect(node)
    node.step(Message(M.APP_RESP, "n1", "n4", node.term, index=2))
    assert node.log.committed == 1
    node.step(Message(M.APP_RESP, "n1", "n3", node.term, index=2))
    assert node.log.committed == 2


def test_conf_rolls_back_when_its_entry_is_truncated() -> None:
    node = make_node("n2", term=1)
    cc = Entry(1, 2, EntryType.CONF_CHANGE, encode_conf_change(ConfChange(0, "n4", "x")))
    node.step(Message(M.APP, "n2", "n1", 1, log_term=1, index=1, entries=(cc,)))
    assert "n4" in node.status().conf.ids()
    node.step(Message(M.APP, "n2", "n3", 2, log_term=1, index=1, entries=(Entry(2, 2),)))
    assert "n4" not in node.status().conf.ids()


def test_config_on_restart_includes_uncommitted_log_changes() -> None:
    c = Cluster(seed=2)
    c.add_nodes(3)
    c.peers["n1"].node.campaign()
    c.stabilize(log=False)
    c.peers["n1"].node.propose_conf_change(ConfChange(ConfChangeType.REMOVE, "n3"))
    c.process_ready("n1", log=False)
    c.restart("n1")
    assert c.peers["n1"].node.status().conf.voters() == ("n1", "n2")


# ---------------------------------------------------------------------------- invalid input
@pytest.mark.parametrize(
    "msg",
    [
        Message(M.APP, "n2", "n2", 1),  # from itself
        Message(M.APP, "n9", "n1", 1),  # not addressed to us
        Message(M.APP, "n2", "", 1),  # no sender
        Message(M.APP, "n2", "n1", 1, index=-1),  # index out of range
        Message(M.APP, "n2", "n1", 1, index=1, log_term=1, entries=(Entry(1, 5),)),  # gap
        Message(M.APP, "n2", "n1", 1, index=1, log_term=1, entries=(Entry(3, 2),)),  # term > msg
        Message(
            M.APP,
            "n2",
            "n1",
            1,
            index=1,
            log_term=1,
            entries=(Entry(1, 2, EntryType.CONF_CHANGE, b"\xc1garbage"),),
        ),
        Message(M.APP_RESP, "n2", "n1", 1, index=1),  # a follower gets a leader's message
        Message(M.SNAP, "n2", "n1", 1),  # no snapshot
        Message(MessageType(99) if False else M.READ_INDEX, "n2", "n1", 1),  # follower: not ours
    ],
)
def test_invalid_peer_messages_are_dropped_and_counted(msg: Message) -> None:
    node = make_node("n2", term=1)
    node.step(msg)
    assert node.dropped_messages == 1
    assert node.log.last_index() == 1


def test_leader_drops_responses_from_non_members() -> None:
    node = make_node(pre_vote=False)
    elect(node)
    node.step(Message(M.APP_RESP, "n1", "n9", node.term, index=2))
    node.step(Message(M.HEARTBEAT_RESP, "n1", "n9", node.term))
    assert node.dropped_messages == 2


def test_follower_does_not_overwrite_committed_entries() -> None:
    node = make_node("n2", terms=(1, 1), term=1, commit=3)
    node.step(Message(M.APP, "n2", "n1", 2, log_term=1, index=1, entries=(Entry(2, 2),)))
    (reply,) = drain(node)
    assert (reply.type, reply.index, reply.reject) == (M.APP_RESP, 3, False)
    assert node.log.term(2) == 1


# ---------------------------------------------------------------------------- status & ready
def test_status_reports_progress_and_applied() -> None:
    c = Cluster(seed=4)
    c.add_nodes(3)
    c.peers["n1"].node.campaign()
    c.stabilize(log=False)
    c.peers["n1"].node.propose(b"x")
    c.stabilize(log=False)
    st = c.peers["n1"].node.status()
    assert (st.role, st.leader, st.commit, st.applied, st.last_index) == (
        Role.LEADER,
        "n1",
        3,
        3,
        3,
    )
    assert st.progress["n2"].match == 3 and st.progress["n2"].next == 4
    assert st.progress["n2"].state == ProgressState.REPLICATE and st.lease_valid
    follower = c.peers["n2"].node.status()
    assert follower.progress == {} and follower.leader == "n1" and follower.applied == 3


def test_same_seed_same_run() -> None:
    def trace(seed: int) -> list[str]:
        c = Cluster(seed=seed)
        c.add_nodes(3)
        for i in range(200):
            nid = f"n{i % 3 + 1}"
            c.tick(nid, 1)
            if c.peers[nid].node.role == Role.LEADER and i % 7 == 0:
                c.peers[nid].node.propose(b"%d" % i)
            c.process_ready(nid)
            c.deliver()
        return c.out

    assert trace(9) == trace(9)
    assert trace(9) != trace(10)


def test_leader_whose_removal_is_uncommitted_may_campaign_to_finish_it() -> None:
    """Two voters; n1 removes itself, loses quorum before n2 got the change. n2 (config
    {n1, n2}) needs n1's vote but n1's log is longer, so n1 itself must campaign (counting
    only n2) to commit its removal; afterwards it never campaigns again."""
    c = Cluster(seed=8)
    c.add_nodes(2)
    c.peers["n1"].node.campaign()
    c.stabilize(log=False)
    c.peers["n1"].node.propose_conf_change(ConfChange(ConfChangeType.REMOVE, "n1"))
    c.isolated = {"n1"}
    for _ in range(25):
        c.tick("n1", 1)
        c.stabilize(log=False)
        if c.peers["n1"].node.role != Role.LEADER:
            break
    assert c.peers["n1"].node.role != Role.LEADER
    c.isolated = set()
    for _ in range(200):
        c.tick("n1", 1)
        c.tick("n2", 1)
        c.stabilize(log=False)
    n1, n2 = c.peers["n1"].node.status(), c.peers["n2"].node.status()
    assert n2.role == Role.LEADER and n2.conf.voters() == ("n2",)
    assert n1.role == Role.LEARNER and n1.commit >= 3


def test_no_lease_reads_after_timeout_now() -> None:
    node = make_node(pre_vote=False, check_quorum=True)
    elect_with_lease(node)
    node.transfer_leadership("n2")  # caught up: TIMEOUT_NOW goes out at once
    for _ in range(10):
        node.tick()  # the transfer times out, but n2 may have won meanwhile
        node.step(Message(M.HEARTBEAT_RESP, "n1", "n2", node.term))
    assert node.role == Role.LEADER and node.transferee == ""
    assert not node.lease_valid()


def test_read_only_ack_of_later_request_releases_earlier_ones() -> None:
    ro = ReadOnly()
    first = ro.add(ReadRequest(5, b"a", "n1"), "n1")
    second = ro.add(ReadRequest(6, b"b", "n2"), "n1")
    assert ro.last_key() == second and first != second
    assert ro.ack("n2", second) == {"n1", "n2"}
    assert [r.context for r in ro.release(second)] == [b"a", b"b"]
    assert ro.release(first) == [] and ro.pending_count() == 0
