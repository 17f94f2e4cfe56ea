"""The safety properties the simulator checks, fed one observation at a time.

The checker knows nothing about ``RawNode``: the cluster reports what each node
persisted, committed, applied and answered, and the checker keeps the global
history (who led which term, which entry is committed at each index, which
client proposals were acknowledged) needed to decide whether Raft's promises
still hold. Every method raises ``Violation`` the moment a promise breaks, so a
failure points at the step that broke it. Keeping it independent of the core
lets unit tests feed it hand-made broken histories and prove it can fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..raft.messages import Entry, HardState

ELECTION_SAFETY = "Election Safety"
LOG_MATCHING = "Log Matching"
LEADER_COMPLETENESS = "Leader Completeness"
STATE_MACHINE_SAFETY = "State Machine Safety"
COMMIT_MONOTONIC = "Commit Monotonicity"
PERSISTED_STATE = "Persisted Term and Vote"
READ_LINEARIZABLE = "Read Linearizability"
EXACTLY_ONCE = "Exactly Once"
LIVENESS = "Liveness"

# What identifies an entry's content: (term, type, data, client, seq).
EntryDigest = tuple[int, int, bytes, str, int]
# A client proposal's session identity.
CommandKey = tuple[str, int]


class Violation(Exception):
    """A Raft safety (or, after healing, liveness) promise was broken."""

    def __init__(self, invariant: str, detail: str) -> None:
        self.invariant = invariant
        self.detail = detail
        super().__init__(f"{invariant}: {detail}")


class LogView(Protocol):
    """A node's persisted log, as far as the checker needs to read it."""

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def entry(self, index: int) -> Entry | None:
        """The entry at ``index``; None if it is compacted away or past the end."""
        ...


def digest(entry: Entry) -> EntryDigest:
    return (entry.term, int(entry.type), entry.data, entry.client, entry.seq)


@dataclass
class _NodeHistory:
    """What the checker remembers about one node (reset in part on restart)."""

    term: int = 0
    vote: str = ""
    commit: int = 0
    applied: int = 0
    commands: set[CommandKey] = field(default_factory=set)
    live: bool = True


@dataclass
class _Read:
    floor: int  # the highest commit index known anywhere when the read started
    checked: bool  # False for lease reads taken while clocks are skewed


class InvariantChecker:
    """Global history plus the checks; one instance per simulated run."""

    def __init__(self) -> None:
        self.leaders: dict[int, str] = {}  # term -> the node that led it
        self.global_commit = 0
        # committed[i] is the digest of the entry committed at index i (None: unseen, compacted)
        self._committed: list[EntryDigest | None] = [None]
        self._by_index_term: dict[tuple[int, int], tuple[int | None, EntryDigest]] = {}
        self._nodes: dict[str, _NodeHistory] = {}
        self._acked: dict[CommandKey, int] = {}
        self._acked_at: dict[int, list[CommandKey]] = {}
        # where each client command took effect (the first applied copy), on every node alike
        self._effective: dict[CommandKey, int] = {}
        self._reads: dict[bytes, _Read] = {}

    def _node(self, node: str) -> _NodeHistory:
        history = self._nodes.get(node)
        if history is None:
            history = self._nodes[node] = _NodeHistory()
        return history

    # -- elections -----------------------------------------------------------
    def leader_elected(self, node: str, term: int, log: LogView) -> None:
        """``node`` became leader of ``term`` with (persisted) ``log``."""
        other = self.leaders.setdefault(term, node)
        if other != node:
            raise Violation(ELECTION_SAFETY, f"term {term} has two leaders: {other} and {node}")
        first, last = log.first_index(), log.last_index()
        if last < self.global_commit:
            raise Violation(
                LEADER_COMPLETENESS,
                f"{node} leads term {term} with log ending at {last}, "
                f"but index {self.global_commit} is committed",
            )
        for index in range(max(first, 1), self.global_commit + 1):
            want = self._committed[index]
            entry = log.entry(index)
            if want is not None and entry is not None and digest(entry) != want:
                raise Violation(
                    LEADER_COMPLETENESS,
                    f"{node} leads term {term} but its entry {index} is {digest(entry)}, "
                    f"committed was {want}",
                )

    # -- persisted state -------------------------------------------------------
    def entries_persisted(self, node: str, entries: Sequence[Entry], prev_term: int | None) -> None:
        """``node`` durably appended ``entries``; ``prev_term`` is the term before the first.

        A deposed leader may still append at indexes committed elsewhere; only
        entries at or below the node's own commit index must be the committed ones.
        """
        history = self._node(node)
        for entry in entries:
            key = (entry.index, entry.term)
            mine = (prev_term, digest(entry))
            seen = self._by_index_term.setdefault(key, mine)
            if seen != mine and not (seen[1] == mine[1] and None in (seen[0], prev_term)):
                raise Violation(
                    LOG_MATCHING,
                    f"{node} holds entry {entry.index} of term {entry.term} as {mine}, "
                    f"another log holds it as {seen}",
                )
            if entry.index <= history.commit:
                self._require_committed(node, entry, "rewrote its committed entry")
            prev_term = entry.term

    def hard_state_persisted(self, node: str, hs: HardState, log: LogView) -> None:
        """``node`` durably stored ``hs``; ``log`` is its log after the same Ready."""
        history = self._node(node)
        if hs.term < history.term:
            raise Violation(PERSISTED_STATE, f"{node} term went back {history.term} -> {hs.term}")
        if hs.term == history.term and history.vote and hs.vote != history.vote:
            raise Violation(
                PERSISTED_STATE,
                f"{node} changed its vote in term {hs.term}: {history.vote} -> {hs.vote or '-'}",
            )
        history.term, history.vote = hs.term, hs.vote
        self.commit_observed(node, hs.commit, log)

    def commit_observed(self, node: str, commit: int, log: LogView) -> None:
        """``node`` knows ``commit``; extend the committed history from its ``log``."""
        history = self._node(node)
        if commit < history.commit:
            raise Violation(
                COMMIT_MONOTONIC, f"{node} commit index went back {history.commit} -> {commit}"
            )
        if commit > log.last_index():
            raise Violation(
                COMMIT_MONOTONIC,
                f"{node} commit index {commit} is past its persisted log ({log.last_index()})",
            )
        for index in range(history.commit + 1, min(commit, self.global_commit) + 1):
            entry = log.entry(index)
            if entry is not None:
                self._require_committed(node, entry, "committed")
        for index in range(self.global_commit + 1, commit + 1):
            entry = log.entry(index)
            self._committed.append(digest(entry) if entry is not None else None)
        history.commit = commit
        self.global_commit = max(self.global_commit, commit)

    def _require_committed(self, node: str, entry: Entry, what: str) -> None:
        want = self._committed[entry.index]
        if want is None:
            self._committed[entry.index] = digest(entry)
        elif want != digest(entry):
            raise Violation(
                STATE_MACHINE_SAFETY,
                f"{node} {what} {digest(entry)} at index {entry.index}, where {want} is committed",
            )

    def node_restarted(
        self, node: str, hs: HardState, applied: int, commands: Iterable[CommandKey]
    ) -> None:
        """``node`` came back from its disk: persisted ``hs``, state machine at ``applied``."""
        history = self._node(node)
        history.live = True
        if hs.commit < history.commit:
            raise Violation(
                COMMIT_MONOTONIC,
                f"{node} restarted with commit {hs.commit}, "
                f"below the {history.commit} it had persisted",
            )
        self.state_restored(node, applied, commands)

    def node_down(self, node: str) -> None:
        """``node`` crashed or was removed: its volatile state no longer counts."""
        self._node(node).live = False

    # -- the state machine -------------------------------------------------------
    def entry_applied(self, node: str, entry: Entry, command: CommandKey | None) -> None:
        """``node`` applied ``entry``; ``command`` is set if it changed the state machine."""
        history = self._node(node)
        if entry.index != history.applied + 1:
            raise Violation(
                STATE_MACHINE_SAFETY,
                f"{node} applied index {entry.index} right after {history.applied}",
            )
        if entry.index > self.global_commit:
            raise Violation(
                STATE_MACHINE_SAFETY,
                f"{node} applied index {entry.index}, past every commit index "
                f"({self.global_commit})",
            )
        self._require_committed(node, entry, "applied")
        history.applied = entry.index
        if command is not None:
            if command in history.commands:
                raise Violation(EXACTLY_ONCE, f"{node} applied {command} a second time")
            history.commands.add(command)
            first = self._effective.setdefault(command, entry.index)
            if first != entry.index:
                raise Violation(
                    EXACTLY_ONCE,
                    f"{node} applied {command} at index {entry.index}, "
                    f"where it took effect at {first} elsewhere",
                )
        for key in self._acked_at.get(entry.index, ()):
            self._require_command(node, history, key)

    def state_restored(self, node: str, applied: int, commands: Iterable[CommandKey]) -> None:
        """``node`` rebuilt its state machine (snapshot or restart) at ``applied``."""
        history = self._node(node)
        history.applied = applied
        history.commands = set(commands)
        for key, index in self._acked.items():
            if index <= applied:
                self._require_command(node, history, key)

    def proposal_acked(self, key: CommandKey, index: int) -> None:
        """A client was told ``key`` took effect at ``index``, which must be where it did.

        Retries put duplicates of ``key`` in the log; only the first applied copy counts,
        and every node must apply that one, at that index, once.
        """
        effective = self._effective.get(key)
        if index < 1 or effective not in (None, index):
            where = f"at {effective}" if effective is not None else "nowhere yet"
            raise Violation(
                EXACTLY_ONCE, f"{key} was acknowledged at index {index}, but took effect {where}"
            )
        if key in self._acked:
            return
        self._acked[key] = index
        self._acked_at.setdefault(index, []).append(key)
        for node, history in self._nodes.items():
            if history.applied >= index:
                self._require_command(node, history, key)

    def _require_command(self, node: str, history: _NodeHistory, key: CommandKey) -> None:
        if history.live and key not in history.commands:
            raise Violation(
                EXACTLY_ONCE,
                f"acknowledged {key} (index {self._acked[key]}) is missing on {node}, "
                f"which applied up to {history.applied}",
            )

    # -- reads -------------------------------------------------------------------
    def read_started(self, context: bytes, checked: bool = True) -> None:
        """A read request tagged ``context`` was issued now."""
        self._reads[context] = _Read(self.global_commit, checked)

    def read_answered(self, node: str, context: bytes, index: int) -> bool:
        """``node`` answered ``context`` with read index ``index``; False if not ours."""
        read = self._reads.pop(context, None)
        if read is None:
            return False
        if read.checked and index < read.floor:
            raise Violation(
                READ_LINEARIZABLE,
                f"{node} answered read {context!r} at index {index}, but {read.floor} "
                "was already committed when it started",
            )
        return True
