"""Every role, every allowed role change, and which peer messages each role uses.

All of the node's role logic keys off these tables (h11's ``_state.py`` idea):
``RawNode`` asks ``check_transition`` before changing role and ``accepts``
before dispatching a message of the current term; anything not accepted is
dropped and counted. Vote requests are handled identically in every role and
so are not listed.
"""

from __future__ import annotations

from .messages import MessageType as M
from .messages import Role

TRANSITIONS: dict[Role, frozenset[Role]] = {
    # election timeout -> pre-candidate (pre-vote) or candidate; TimeoutNow -> candidate
    Role.FOLLOWER: frozenset({Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE}),
    # won the pre-vote -> candidate; saw a leader or lost -> follower
    Role.PRE_CANDIDATE: frozenset({Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE}),
    # won -> leader; timed out -> campaign again; saw a leader or higher term -> follower
    Role.CANDIDATE: frozenset({Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE, Role.LEADER}),
    # higher term, lost quorum (check-quorum), or removed from the configuration
    Role.LEADER: frozenset({Role.FOLLOWER}),
}

_FROM_LEADER = frozenset({M.APP, M.HEARTBEAT, M.SNAP})

ACCEPTS: dict[Role, frozenset[M]] = {
    Role.FOLLOWER: _FROM_LEADER | {M.TIMEOUT_NOW, M.READ_INDEX_RESP},
    Role.PRE_CANDIDATE: _FROM_LEADER | {M.PRE_VOTE_RESP},
    Role.CANDIDATE: _FROM_LEADER | {M.VOTE_RESP},
    Role.LEADER: frozenset(
        {M.APP_RESP, M.HEARTBEAT_RESP, M.SNAP_RESP, M.READ_INDEX, M.TRANSFER_LEADER, M.PROP}
    ),
}

# messages a leader only takes from members of its configuration
FROM_MEMBERS_ONLY = ACCEPTS[Role.LEADER] | {M.VOTE_RESP, M.PRE_VOTE_RESP}


class IllegalTransitionError(AssertionError):
    """A bug in the core: a role change the table does not allow."""


def check_transition(frm: Role, to: Role) -> None:
    if to not in TRANSITIONS[frm]:
        raise IllegalTransitionError(f"{frm.name} -> {to.name}")


def accepts(role: Role, msg_type: M) -> bool:
    return msg_type in ACCEPTS[role]
