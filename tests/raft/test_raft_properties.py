"""Hypothesis properties: the log against a list model, quorum arithmetic against brute
force, progress invariants, and cluster safety under random schedules."""

from __future__ import annotations

import contextlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from raft_env import Cluster

from raftpod_sidecar.raft.errors import RaftUsageError
from raftpod_sidecar.raft.log import RaftLog
from raftpod_sidecar.raft.messages import ConfChange, ConfChangeType, ConfState, Entry, Role
from raftpod_sidecar.raft.node import RawNode
from raftpod_sidecar.raft.progress import Progress, ProgressState
from raftpod_sidecar.raft.quorum import VoteResult, committed_index, has_quorum, vote_result
from raftpod_sidecar.raft.storage import MemoryStorage

# ---------------------------------------------------------------------------- log vs model

append_op = st.tuples(
    st.just("append"),
    st.integers(0, 12),  # prev index (may be past the end)
    st.booleans(),  # use the right prev term?
    st.lists(st.integers(0, 3), max_size=5),  # term increments of the new entries
    st.integers(0, 15),  # leader commit
)
persist_op = st.tuples(st.just("persist"))
compact_op = st.tuples(st.just("compact"), st.integers(0, 15))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(append_op, persist_op, compact_op), max_size=30))
def test_log_matches_list_model(ops: list[tuple[object, ...]]) -> None:
    storage = MemoryStorage()
    log = RaftLog(storage)
    model = [0]  # model[i] = term of entry i; index 0 is the sentinel
    committed = 0
    for op in ops:
        if op[0] == "append":
            _, prev, right, incs, leader_commit = op
            assert isinstance(prev, int) and isinstance(incs, list)
            assert isinstance(leader_commit, int)
            prev_term = model[prev] if prev < len(model) else 1
            if not right:
                prev_term += 1
            terms, t = [], max(prev_term, model[-1] if prev < len(model) else 0)
            for inc in incs:
                t += inc
                terms.append(t)
            entries = [Entry(term, prev + 1 + i) for i, term in enumerate(terms)]
            if prev < committed:
                continue  # the node answers with its commit index before maybe_append
            result = log.maybe_append(prev, prev_term, leader_commit, entries)
            matches = prev < len(model) and model[prev] == prev_term
            assert (result is not None) == matches
            if not matches:
                continue
            for e in entries:
                if e.index < len(model) and model[e.index] == e.term:
                    continue
                assert e.index > committed, "a committed entry was overwritten"
                del model[e.index :]
                model.append(e.term)
            committed = max(committed, min(leader_commit, prev + len(entries)))
        elif op[0] == "persist":
            storage.append(log.unstable.entries)
            if log.unstable.entries:
                last = log.unstable.entries[-1]
                log.unstable.stable_to(last.index, last.term)
        else:
            index = op[1]
            assert isinstance(index, int)
            if storage.first_index() <= index <= min(committed, storage.last_index()):
                storage.create_snapshot(index, ConfState(), b"")
                storage.compact(index)
        assert log.last_index() == len(model) - 1
        assert log.committed == committed
        first = log.first_index()
        for i in range(first - 1, len(model)):
            assert log.term(i) == model[i]
        assert log.term(len(model)) is None
        got = log.slice(first, len(model), 1 << 30)
        assert [e.term for e in got] == model[first:]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=12), st.integers(0, 14))
def test_find_conflict_by_term_finds_last_index_with_term_at_most(
    increments: list[int], probe: int
) -> None:
    storage = MemoryStorage()
    terms, t = [], 0
    for inc in increments:
        t += inc % 3  # repeated terms are common
        terms.append(max(t, 1))
    storage.append([Entry(term, i + 1) for i, term in enumerate(terms)])
    log = RaftLog(storage)
    model = [0, *terms]
    index = min(probe, len(model) - 1)
    for term in range(0, 8):
        got = log.find_conflict_by_term(index, term)
        want = max(i for i in range(index + 1) if model[i] <= term)
        assert got == want


# ---------------------------------------------------------------------------- quorum
ids = st.lists(st.sampled_from([f"n{i}" for i in range(1, 8)]), min_size=1, max_size=7, unique=True)


@settings(deadline=None)
@given(ids, st.data())
def test_committed_index_is_largest_index_a_majority_holds(
    voters: list[str], data: st.DataObject
) -> None:
    match = {v: data.draw(st.integers(0, 20)) for v in voters}
    got = committed_index(voters, match)
    majority = len(voters) // 2 + 1
    want = max(i for i in range(21) if sum(1 for v in voters if match[v] >= i) >= majority)
    assert got == want


@settings(deadline=None)
@given(ids, st.data())
def test_vote_result_matches_brute_force(voters: list[str], data: st.DataObject) -> None:
    votes = {v: data.draw(st.booleans()) for v in voters if data.draw(st.booleans())}
    majority = len(voters) // 2 + 1
    granted = sum(votes.get(v) is True for v in voters)
    possible = granted + sum(v not in votes for v in voters)
    want = (
        VoteResult.WON
        if granted >= majority
        else VoteResult.PENDING
        if possible >= majority
        else VoteResult.LOST
    )
    assert vote_result(voters, votes) == want
    assert has_quorum(voters, [v for v in voters if votes.get(v)]) == (granted >= majority)


# ---------------------------------------------------------------------------- progress
progress_op = st.one_of(
    st.tuples(st.just("update"), st.integers(0, 30)),
    st.tuples(st.just("decr"), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.just("probe")),
    st.tuples(st.just("replicate")),
    st.tuples(st.just("sent"), st.integers(0, 30)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(progress_op, max_size=40))
def test_progress_next_stays_above_match_and_match_never_falls(
    ops: list[tuple[object, ...]],
) -> None:
    pr = Progress(next_index=10, max_inflight=3)
    for op in ops:
        before = pr.match
        kind = op[0]
        if kind == "update":
            assert isinstance(op[1], int)
            pr.maybe_update(op[1])
        elif kind == "decr":
            assert isinstance(op[1], int) and isinstance(op[2], int)
            pr.maybe_decr_to(op[1], op[2])
        elif kind == "probe":
            pr.become_probe()
        elif kind == "replicate":
            pr.become_replicate()
        elif pr.state == ProgressState.REPLICATE and not pr.is_paused():
            assert isinstance(op[1], int)
            pr.inflights.add(max(op[1], pr.next))
            pr.next = max(op[1], pr.next) + 1
        assert pr.match >= before
        assert pr.next >= pr.match + 1
        assert pr.inflights.count() <= 3 or pr.state != ProgressState.REPLICATE


# ---------------------------------------------------------------------------- cluster safety
def random_change(node: RawNode, target: str, joined: set[str]) -> ConfChange | None:
    """The next sensible change for ``target``: add, promote, or remove (never re-add)."""
    member = node.status().conf.get(target)
    if member is None:
        return None if target in joined else ConfChange(ConfChangeType.ADD_LEARNER, target, target)
    kind = ConfChangeType.REMOVE if member.voter else ConfChangeType.PROMOTE
    return ConfChange(kind, target)


STEPS = 20000


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32))
def test_random_schedules_keep_raft_safety(seed: int) -> None:
    """Drops, reordering, partitions, restarts, compaction, transfers and membership
    changes: at most one leader per term, applied prefixes agree, and after healing
    everything converges and the callers' configuration equals the core's."""
    rng = random.Random(seed)
    c = Cluster(
        seed=seed,
        election_ticks=(10, 20),
        heartbeat_ticks=3,
        max_inflight=4,
        max_msg_bytes=200,
        snapshot_chunk_bytes=7,
    )
    c.add_nodes(3)
    c.add_joining("n4")
    c.add_joining("n5")
    nodes = sorted(c.peers)
    joined = {"n1", "n2", "n3"}
    leaders: dict[int, str] = {}
    applied: dict[int, bytes] = {}
    proposed = 0
    for _ in range(STEPS):
        r, nid = rng.random(), rng.choice(nodes)
        node = c.peers[nid].node
        leading = node.role == Role.LEADER
        if r < 0.12:
            c.tick(nid, 1)
        elif r < 0.2 and leading:
            proposed += 1
            with contextlib.suppress(RaftUsageError):
                node.propose(b"v%d" % proposed)
        elif r < 0.23 and leading:
            target = rng.choice(nodes)
            cc = random_change(node, target, joined)
            if cc is not None:
                with contextlib.suppress(RaftUsageError):
                    node.propose_conf_change(cc)
                    joined.add(target)
        elif r < 0.25 and c.inflight:
            c.inflight.pop(rng.randrange(len(c.inflight)))  # lost
        elif r < 0.255:
            c.isolated = {rng.choice(nodes)} if rng.random() < 0.5 else set()
        elif r < 0.27:
            peer = c.peers[nid]
            if peer.applied_index > peer.storage.first_index() + 3:
                c.run_command(f"compact {nid} {peer.applied_index - 1}")
        elif r < 0.275:
            c.restart(nid)
        elif r < 0.28 and leading:
            with contextlib.suppress(RaftUsageError):
                node.transfer_leadership(rng.choice([i for i in nodes if i != nid]))
        elif r < 0.6:
            c.process_ready(nid, log=False)
        elif c.inflight:
            m = c.inflight.pop(rng.randrange(min(3, len(c.inflight))))  # mild reordering
            if not (m.to in c.isolated or m.frm in c.isolated):
                c.peers[m.to].node.step(m)
        for i in nodes:
            n, hard_state = c.peers[i].node, c.peers[i].storage.hard_state
            if n.role == Role.LEADER and (hard_state.term, hard_state.vote) == (n.term, i):
                # a leader that persisted its election (one that crashes before that
                # never sent a message, and may rightly vote again after restart)
                assert leaders.setdefault(n.term, i) == i, f"two leaders in term {n.term}"
            for j, d in enumerate(c.peers[i].applied):
                assert applied.setdefault(j, d) == d, f"{i} applied a different entry {j}"
    c.isolated = set()
    for _ in range(300):
        for i in nodes:
            c.tick(i, 1)
        c.stabilize(log=False)
    leader = c.leader()
    assert leader
    members = c.peers[leader].node.status().conf.ids()
    c.peers[leader].node.propose(b"final")  # liveness: a healed cluster commits
    c.stabilize(log=False)
    assert len({tuple(c.peers[i].applied) for i in members}) == 1
    assert c.peers[leader].applied[-1] == b"final"
    for i in members:
        assert c.peers[i].conf == c.peers[i].node.status().conf
