"""Membership changes: validation, the pure ``apply_change``, and the entry payload codec.

Why the single-server rule and not joint consensus: with one voter added or
removed at a time, any majority of the old configuration overlaps any
majority of the new one, so no joint (C_old,new) phase is needed; the core
stays one configuration and one majority quorum, which is simpler to test and
to simulate. Learners make the rule practical: a server joins as a learner
(no vote, not in any quorum), catches up, then is promoted, so adding a voter
never leaves the cluster waiting on an empty log.

The rule has a known bug (Ongaro, raft-dev 2015, fixed in the thesis errata):
a leader of a new term could propose a change while a different change from
an earlier term is still uncommitted in some log, and the two single-server
steps can combine into a two-server step with disjoint majorities. The fix,
enforced by ``RawNode.propose_conf_change``: a leader must first commit an
entry of its own term (the no-op it appends on election) before proposing a
change, and only one change may be uncommitted at any time.

Each node switches configuration when a change is *appended* to its log
(committed or not) and rolls back if that entry is truncated away. A leader
that removes itself keeps leading until the removal commits, then steps down;
a node whose removal is appended but not committed may still campaign, since
the old configuration may need it to elect anyone (thesis §4.2.2).
"""

from __future__ import annotations

import msgpack

from .errors import InvalidConfChangeError
from .messages import ConfChange, ConfChangeType, ConfState, Member


def apply_change(conf: ConfState, cc: ConfChange) -> ConfState:
    """``conf`` after ``cc``; raises ``InvalidConfChangeError`` if it does not apply."""
    member = conf.get(cc.node_id)
    if not cc.node_id:
        raise InvalidConfChangeError("a membership change needs a node id")
    if cc.type == ConfChangeType.ADD_LEARNER:
        if member is not None:
            raise InvalidConfChangeError(f"{cc.node_id!r} is already a member")
        members = [*conf.members, Member(cc.node_id, cc.address, voter=False)]
    elif cc.type == ConfChangeType.PROMOTE:
        if member is None or member.voter:
            raise InvalidConfChangeError(f"{cc.node_id!r} is not a learner; add it as one first")
        members = [m._replace(voter=True) if m.id == cc.node_id else m for m in conf.members]
    elif cc.type == ConfChangeType.REMOVE:
        if member is None:
            raise InvalidConfChangeError(f"{cc.node_id!r} is not a member")
        if member.voter and conf.voters() == (cc.node_id,):
            raise InvalidConfChangeError("cannot remove the last voter")
        members = [m for m in conf.members if m.id != cc.node_id]
    else:
        raise InvalidConfChangeError(f"unknown change type {cc.type!r}")
    return ConfState(tuple(sorted(members)))


def encode_conf_change(cc: ConfChange) -> bytes:
    """The data of a CONF_CHANGE entry."""
    data: bytes = msgpack.packb([int(cc.type), cc.node_id, cc.address])
    return data


def decode_conf_change(data: bytes) -> ConfChange:
    """Inverse of ``encode_conf_change``; ValueError if ``data`` is not a change."""
    try:
        kind, node_id, address = msgpack.unpackb(data)
        cc = ConfChange(ConfChangeType(kind), node_id, address)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"malformed conf change payload: {exc}") from exc
    if not isinstance(node_id, str) or not isinstance(address, str):
        raise ValueError("malformed conf change payload: ids must be strings")
    return cc
