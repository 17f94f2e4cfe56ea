"""The invariant checker fails on deliberately broken, hand-made histories (and only on those)."""

from __future__ import annotations

import pytest

from raftpod_sidecar.raft.messages import Entry, HardState
from raftpod_sidecar.sim import invariants as inv
from raftpod_sidecar.sim.invariants import InvariantChecker, Violation


class ListLog:
    """A log given as its entries from index ``first`` on (earlier ones compacted)."""

    def __init__(self, entries: list[Entry], first: int = 1) -> None:
        self.entries = entries
        self.first = first

    def first_index(self) -> int:
        return self.first

    def last_index(self) -> int:
        return self.first + len(self.entries) - 1

    def entry(self, index: int) -> Entry | None:
        if index < self.first or index > self.last_index():
            return None
        return self.entries[index - self.first]


def e(term: int, index: int, data: bytes = b"", client: str = "", seq: int = 0) -> Entry:
    return Entry(term, index, data=data, client=client, seq=seq)


LOG = [e(1, 1), e(1, 2, b"x", "c1", 1), e(2, 3, b"y", "c1", 2)]


def committed_checker(log: list[Entry] = LOG, node: str = "n1") -> InvariantChecker:
    """A checker that saw ``node`` persist and commit all of ``log``."""
    checker = InvariantChecker()
    checker.entries_persisted(node, log, 0)
    checker.hard_state_persisted(node, HardState(log[-1].term, node, len(log)), ListLog(log))
    return checker


def expect(invariant: str) -> pytest.RaisesExc[Violation]:
    return pytest.raises(Violation, match=f"^{invariant}: ")


def test_a_correct_history_passes() -> None:
    checker = committed_checker()
    checker.leader_elected("n1", 2, ListLog(LOG))
    for node in ("n1", "n2"):
        checker.entries_persisted(node, LOG, 0)
        for entry in LOG:
            command = (entry.client, entry.seq) if entry.client else None
            checker.entry_applied(node, entry, command)
    checker.proposal_acked(("c1", 2), 3)
    checker.read_started(b"r1")
    assert checker.read_answered("n2", b"r1", 3)
    assert not checker.read_answered("n2", b"unknown", 3)
    checker.leader_elected("n2", 3, ListLog(LOG))
    assert checker.global_commit == 3
    assert checker.leaders == {2: "n1", 3: "n2"}


def test_two_leaders_in_one_term() -> None:
    checker = InvariantChecker()
    checker.leader_elected("n1", 4, ListLog([]))
    checker.leader_elected("n1", 4, ListLog([]))  # the same leader reported twice is fine
    with expect(inv.ELECTION_SAFETY):
        checker.leader_elected("n2", 4, ListLog([]))


def test_same_index_and_term_with_different_content() -> None:
    checker = InvariantChecker()
    checker.entries_persisted("n1", [e(1, 1), e(2, 2, b"a")], 0)
    with expect(inv.LOG_MATCHING):
        checker.entries_persisted("n2", [e(2, 2, b"b")], 1)


def test_same_index_and_term_with_different_predecessor() -> None:
    checker = InvariantChecker()
    checker.entries_persisted("n1", [e(1, 1), e(3, 2, b"a")], 0)
    with expect(inv.LOG_MATCHING):
        checker.entries_persisted("n2", [e(2, 1), e(3, 2, b"a")], 0)


def test_new_leader_missing_a_committed_entry() -> None:
    checker = committed_checker()
    with expect(inv.LEADER_COMPLETENESS):
        checker.leader_elected("n2", 3, ListLog(LOG[:2]))


def test_new_leader_with_a_different_committed_entry() -> None:
    checker = committed_checker()
    other = [*LOG[:2], e(3, 3, b"z")]
    with expect(inv.LEADER_COMPLETENESS):
        checker.leader_elected("n2", 3, ListLog(other))


def test_leader_whose_committed_prefix_is_compacted_passes() -> None:
    checker = committed_checker()
    checker.leader_elected("n2", 3, ListLog(LOG[2:], first=3))


def test_divergent_applied_command() -> None:
    checker = committed_checker()
    checker.entry_applied("n2", LOG[0], None)
    with expect(inv.STATE_MACHINE_SAFETY):
        checker.entry_applied("n2", e(1, 2, b"other", "c9", 1), ("c9", 1))


def test_applied_past_every_commit_index() -> None:
    checker = committed_checker(LOG[:1])
    checker.entry_applied("n1", LOG[0], None)
    with expect(inv.STATE_MACHINE_SAFETY):
        checker.entry_applied("n1", LOG[1], ("c1", 1))


def test_applied_out_of_order() -> None:
    checker = committed_checker()
    with expect(inv.STATE_MACHINE_SAFETY):
        checker.entry_applied("n1", LOG[1], ("c1", 1))


def test_committed_entry_overwritten_on_disk() -> None:
    checker = committed_checker()
    with expect(inv.STATE_MACHINE_SAFETY):
        checker.entries_persisted("n1", [e(4, 3, b"new")], 2)


def test_deposed_leader_may_append_at_an_index_committed_elsewhere() -> None:
    checker = committed_checker()
    checker.entries_persisted("n2", LOG[:2], 0)
    checker.entries_persisted("n2", [e(1, 3, b"stale")], 1)  # n2 has not committed index 3


def test_committing_a_different_entry() -> None:
    checker = committed_checker()
    other = [*LOG[:2], e(3, 3, b"z")]
    checker.entries_persisted("n2", other, 0)
    with expect(inv.STATE_MACHINE_SAFETY):
        checker.hard_state_persisted("n2", HardState(3, "", 3), ListLog(other))


def test_commit_index_going_back() -> None:
    checker = committed_checker()
    with expect(inv.COMMIT_MONOTONIC):
        checker.hard_state_persisted("n1", HardState(2, "n1", 2), ListLog(LOG))


def test_restart_below_the_persisted_commit_index() -> None:
    checker = committed_checker()
    checker.node_down("n1")
    with expect(inv.COMMIT_MONOTONIC):
        checker.node_restarted("n1", HardState(2, "n1", 1), 0, [])


def test_commit_index_past_the_persisted_log() -> None:
    checker = InvariantChecker()
    with expect(inv.COMMIT_MONOTONIC):
        checker.hard_state_persisted("n1", HardState(1, "", 3), ListLog(LOG[:2]))


def test_vote_changed_within_a_term() -> None:
    checker = InvariantChecker()
    checker.hard_state_persisted("n1", HardState(5, "n2", 0), ListLog([]))
    with expect(inv.PERSISTED_STATE):
        checker.hard_state_persisted("n1", HardState(5, "n3", 0), ListLog([]))


def test_term_going_back() -> None:
    checker = InvariantChecker()
    checker.hard_state_persisted("n1", HardState(5, "", 0), ListLog([]))
    with expect(inv.PERSISTED_STATE):
        checker.hard_state_persisted("n1", HardState(4, "", 0), ListLog([]))


def test_command_applied_twice() -> None:
    dup = [*LOG, e(2, 4, b"x", "c1", 1)]
    checker = committed_checker(dup)
    for entry in LOG:
        checker.entry_applied("n1", entry, (entry.client, entry.seq) if entry.client else None)
    with expect(inv.EXACTLY_ONCE):
        checker.entry_applied("n1", dup[3], ("c1", 1))


def test_lost_acknowledged_write_on_a_node_that_applied_past_it() -> None:
    checker = committed_checker()
    checker.proposal_acked(("c1", 2), 3)
    checker.entry_applied("n2", LOG[0], None)
    checker.entry_applied("n2", LOG[1], ("c1", 1))
    with expect(inv.EXACTLY_ONCE):
        checker.entry_applied("n2", LOG[2], None)  # applied, but not as the acked command


def test_lost_acknowledged_write_after_a_restore() -> None:
    checker = committed_checker()
    checker.proposal_acked(("c1", 1), 2)
    checker.state_restored("n3", 1, [])  # behind the ack: fine
    with expect(inv.EXACTLY_ONCE):
        checker.state_restored("n3", 3, [("c1", 2)])


def test_ack_checks_nodes_already_past_it() -> None:
    checker = committed_checker()
    checker.state_restored("n2", 3, [])
    with expect(inv.EXACTLY_ONCE):
        checker.proposal_acked(("c1", 2), 3)


def test_a_down_node_is_not_held_to_acks() -> None:
    checker = committed_checker()
    checker.state_restored("n2", 3, [])
    checker.node_down("n2")
    checker.proposal_acked(("c1", 2), 3)


def test_stale_read() -> None:
    checker = committed_checker()
    checker.read_started(b"r1")
    with expect(inv.READ_LINEARIZABLE):
        checker.read_answered("n2", b"r1", 2)


def test_unchecked_lease_read_may_be_stale() -> None:
    checker = committed_checker()
    checker.read_started(b"r1", checked=False)
    assert checker.read_answered("n2", b"r1", 2)


DUPLICATED = [*LOG, e(2, 4, b"x", "c1", 1)]  # a retry of c1/1, committed after the original


def apply_deduplicated(checker: InvariantChecker, node: str) -> None:
    """``node`` applies ``DUPLICATED`` as sessions do: the retry at index 4 changes nothing."""
    for entry in DUPLICATED:
        command = (entry.client, entry.seq) if entry.client and entry.index < 4 else None
        checker.entry_applied(node, entry, command)


def test_a_deduplicated_retry_passes() -> None:
    checker = committed_checker(DUPLICATED)
    apply_deduplicated(checker, "n1")
    checker.proposal_acked(("c1", 1), 2)
    apply_deduplicated(checker, "n2")


def test_a_command_taking_effect_at_another_index_on_another_node() -> None:
    checker = committed_checker(DUPLICATED)
    apply_deduplicated(checker, "n1")
    checker.entry_applied("n2", LOG[0], None)
    checker.entry_applied("n2", LOG[1], None)  # n2 skipped the original...
    checker.entry_applied("n2", LOG[2], ("c1", 2))
    with expect(inv.EXACTLY_ONCE):
        checker.entry_applied("n2", DUPLICATED[3], ("c1", 1))  # ...and applied the retry


def test_an_ack_must_name_the_index_where_the_write_took_effect() -> None:
    checker = committed_checker(DUPLICATED)
    apply_deduplicated(checker, "n1")
    with expect(inv.EXACTLY_ONCE):
        checker.proposal_acked(("c1", 1), 4)  # the retry's index, not the original's


def test_an_ack_without_an_index() -> None:
    with expect(inv.EXACTLY_ONCE):
        InvariantChecker().proposal_acked(("c1", 1), 0)
