"""Immutable values that flow into and out of the Raft core.

Everything here is a ``NamedTuple``: cheap to build (the core creates many
per committed entry), immutable, and msgpack encodes it as a plain array, so
the wire form is array-shaped with no field names repeated per message.
Node ids are short strings (``"n1"``); indexes and terms are ints.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class EntryType(IntEnum):
    """What a log entry carries; an empty NORMAL entry is the leader's no-op."""

    NORMAL = 0
    CONF_CHANGE = 1


class Entry(NamedTuple):
    """One log entry.

    ``client``/``seq`` identify a client-session proposal for exactly-once
    application (empty client: no session).
    """

    term: int
    index: int  # type: ignore[assignment]
    type: EntryType = EntryType.NORMAL
    data: bytes = b""
    client: str = ""
    seq: int = 0


class Member(NamedTuple):
    """A member of the configuration; the address travels with it."""

    id: str
    address: str
    voter: bool


class ConfState(NamedTuple):
    """A membership configuration, members sorted by id."""

    members: tuple[Member, ...] = ()

    def voters(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.members if m.voter)

    def learners(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.members if not m.voter)

    def ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.members)

    def get(self, node_id: str) -> Member | None:
        for m in self.members:
            if m.id == node_id:
                return m
        return None


class ConfChangeType(IntEnum):
    ADD_LEARNER = 0
    PROMOTE = 1
    REMOVE = 2


class ConfChange(NamedTuple):
    """A single-server membership change, the payload of a CONF_CHANGE entry."""

    type: ConfChangeType
    node_id: str
    address: str = ""


class HardState(NamedTuple):
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: str = ""
    commit: int = 0


class SnapshotMeta(NamedTuple):
    index: int = 0  # type: ignore[assignment]
    term: int = 0
    conf: ConfState = ConfState()


class Snapshot(NamedTuple):
    """State-machine bytes plus the metadata that lets the log start after it."""

    meta: SnapshotMeta = SnapshotMeta()
    data: bytes = b""


class MessageType(IntEnum):
    # local events, never sent over the network
    HUP = 0  # start a (pre-)campaign
    BEAT = 1  # leader: send heartbeats
    PROP = 2  # a proposal (local, or forwarded by a follower)
    CHECK_QUORUM = 3
    UNREACHABLE = 4  # runtime reports a peer cannot be reached
    SNAP_STATUS = 5  # runtime reports snapshot delivery outcome (reject=failure)
    # peer messages
    APP = 10
    APP_RESP = 11
    VOTE = 12
    VOTE_RESP = 13
    PRE_VOTE = 14
    PRE_VOTE_RESP = 15
    SNAP = 16  # one InstallSnapshot chunk
    SNAP_RESP = 17
    HEARTBEAT = 18
    HEARTBEAT_RESP = 19
    TRANSFER_LEADER = 20
    TIMEOUT_NOW = 21
    READ_INDEX = 22
    READ_INDEX_RESP = 23


LOCAL_MESSAGES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.CHECK_QUORUM,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
    }
)


class Message(NamedTuple):
    """One one-way message between cores (etcd style, not request/response).

    Field use by type follows etcd's raftpb.Message: ``index``/``log_term`` is
    the entry preceding ``entries`` for APP, the candidate's last entry for
    (PRE_)VOTE, the acknowledged index for APP_RESP. On a rejected APP_RESP,
    ``reject_hint``/``hint_term`` are the conflict hints for fast backtracking.
    ``context`` carries a ReadIndex request id or a transfer marker. For SNAP,
    ``snapshot.meta`` describes the whole snapshot and ``snapshot.data`` is the
    chunk at ``chunk_offset``; ``chunk_done`` marks the last chunk. On APP and
    HEARTBEAT, ``chunk_offset`` is the leader's tick when it sent them (0: none), echoed
    in the APP_RESP/HEARTBEAT_RESP that answers, so a lease counts from the send. A
    rejected HEARTBEAT_RESP says the follower's log ends (``reject_hint``) below the
    commit index it was sent, i.e. it lost entries it had acknowledged. A PROP
    carries a follower's proposals to its leader (``entries`` with term and index 0).
    """

    type: MessageType
    to: str
    frm: str
    term: int = 0
    log_term: int = 0
    index: int = 0  # type: ignore[assignment]
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    hint_term: int = 0
    context: bytes = b""
    snapshot: Snapshot | None = None
    chunk_offset: int = 0
    chunk_done: bool = False


class ReadState(NamedTuple):
    """A ReadIndex result: once ``applied >= index`` a read for ``context`` is linearizable."""

    index: int  # type: ignore[assignment]
    context: bytes


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3
    LEARNER = 4  # a follower that is not a voter (reported only)


class SoftState(NamedTuple):
    """Volatile state worth reporting when it changes (not persisted)."""

    leader: str
    role: Role


class Ready(NamedTuple):
    """What the caller must do, in this order, before calling ``advance()``.

    1. persist ``hard_state`` (if not None), ``entries`` (they replace any
       stored entries from ``entries[0].index`` on) and ``snapshot`` (if not
       None) durably;
    2. only then send ``messages``;
    3. apply ``committed_entries`` in order;
    4. serve ``read_states`` once applied has reached their index;
    then call ``advance(ready)``.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    messages: tuple[Message, ...] = ()
    committed_entries: tuple[Entry, ...] = ()
    read_states: tuple[ReadState, ...] = ()
